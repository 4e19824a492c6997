import Foundation
import StetCore

/// Writing to standard output or error, with colour only on a terminal and never when
/// `NO_COLOR` is set.
///
/// Text output shows names, reasons and messages that come from outside (file names in a
/// repository, reasons in the audit log, restic's errors). A control character among them could
/// fake a line or hide text on the reader's terminal, so every text written here is escaped
/// (`TextEscaping`): `line` escapes newlines too, `write` (multi-line rendered text) keeps them.
/// Colour survives because `style` marks its sequences with a token chosen at random when Stet
/// starts, which text from outside cannot contain; only those tokens become escape sequences.
/// JSON output is written as is: its encoder escapes control characters itself.
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

    /// Writes rendered text: control characters other than newlines escaped, styles applied.
    func write(_ text: String) { writeRaw(render(text, keepNewlines: true)) }

    /// Writes one line: every control character escaped, newlines included.
    func line(_ text: String = "") { writeRaw(render(text, keepNewlines: false) + "\n") }

    private func render(_ text: String, keepNewlines: Bool) -> String {
        TextEscaping.escape(text, keepNewlines: keepNewlines).replacingOccurrences(of: Self.styleToken, with: "\u{1B}[")
    }

    /// Marks the start of an escape sequence made by `style`; random per process.
    private static let styleToken = "\u{E000}" + (0..<16).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined() + "\u{E001}"

    private func writeRaw(_ text: String) {
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

    private func style(_ code: String, _ text: String) -> String {
        colour ? "\(Self.styleToken)\(code)m\(text)\(Self.styleToken)0m" : text
    }
    func red(_ text: String) -> String { style("31", text) }
    func green(_ text: String) -> String { style("32", text) }
    func yellow(_ text: String) -> String { style("33", text) }
    func bold(_ text: String) -> String { style("1", text) }
    func dim(_ text: String) -> String { style("2", text) }

    /// Moves the cursor up `lines` lines and clears from there to the end of the screen, as
    /// text for `write`: rewrites a block of live lines in place. Only for a terminal.
    func rewind(_ lines: Int) -> String { lines > 0 ? "\(Self.styleToken)\(lines)A\(Self.styleToken)J" : "" }

    /// The terminal's width in columns (80 when it does not say).
    var columns: Int {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    func warning(_ text: String) { Terminal.standardError.line(Terminal.standardError.yellow("warning") + ": " + text) }

    /// Pretty JSON with sorted keys and RFC 3339 dates, then a newline.
    func json(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        json(data: (try? encoder.encode(value)) ?? Data("null".utf8))
    }

    /// JSON as an encoder made it, then a newline. The encoder escaped control characters
    /// itself; escaping its text again for a terminal (`write`, `line`) would change the values
    /// it holds and could make it invalid (a U+202E in a value would become `\u{202e}`).
    func json(data: Data) { writeRaw(String(decoding: data, as: UTF8.self) + "\n") }
}
