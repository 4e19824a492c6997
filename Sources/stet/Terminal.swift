import Foundation

/// Writing to standard output or error, with colour only on a terminal and never when
/// `NO_COLOR` is set.
struct Terminal: Sendable {
    let fd: Int32
    let colour: Bool

    static let standardOutput = Terminal(fd: 1)
    static let standardError = Terminal(fd: 2)

    init(fd: Int32) {
        self.fd = fd
        let environment = ProcessInfo.processInfo.environment
        colour = isatty(fd) == 1 && environment["NO_COLOR"].map(\.isEmpty) != false && environment["TERM"] != "dumb"
    }

    func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            bytes = bytes.dropFirst(n)
        }
    }

    func line(_ text: String = "") { write(text + "\n") }

    private func style(_ code: String, _ text: String) -> String { colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    func red(_ text: String) -> String { style("31", text) }
    func green(_ text: String) -> String { style("32", text) }
    func yellow(_ text: String) -> String { style("33", text) }
    func bold(_ text: String) -> String { style("1", text) }
    func dim(_ text: String) -> String { style("2", text) }

    func warning(_ text: String) { Terminal.standardError.line(Terminal.standardError.yellow("warning") + ": " + text) }

    /// Pretty JSON with sorted keys and RFC 3339 dates, then a newline.
    func json(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let data = (try? encoder.encode(value)) ?? Data("null".utf8)
        write(String(decoding: data, as: UTF8.self) + "\n")
    }
}
