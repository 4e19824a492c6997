/// The one form of URL Stet's probes and notifiers speak, decided the same way by `validate`
/// and at run time: `http://HOST[:PORT][/PATH][?QUERY]`, where HOST is a DNS name, an IPv4
/// address or a bracketed IPv6 address (`[::1]`). Anything else is refused with the reason:
/// https (Stet's sockets speak plain HTTP; Alertmanager delivers to https receivers), a user
/// or password in the URL (it would appear in plans and logs), a fragment, spaces or control
/// characters.
public struct HTTPURL: Sendable, Equatable {
    public let host: String
    public let port: Int
    /// The path and query sent in the request line, at least `/`.
    public let target: String

    public static let maximumLength = 2048

    /// Parses `text`, or says why it is not such a URL.
    public static func parse(_ text: String) -> Result<HTTPURL, Problem> {
        guard text.utf8.count <= maximumLength else { return .failure(Problem("is longer than \(maximumLength) bytes")) }
        // From here on every character is one printable ASCII byte: the checks below go byte by
        // byte (a release has a URL in every monitor).
        guard text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(Problem("holds spaces, control characters or characters that are not ASCII; percent-encode them"))
        }
        if text.utf8.prefix(8).lazy.map(lowercased).elementsEqual("https://".utf8) {
            return .failure(Problem(
                "uses https, which Stet's probes and notifiers do not speak; probe over http or tcp, and send alerts "
                    + "through Alertmanager, which delivers to https receivers"))
        }
        guard text.hasPrefix("http://") else { return .failure(Problem("expected a URL starting with http://")) }
        let rest = text.dropFirst(7)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var target = String(rest.dropFirst(authority.count))
        if target.utf8.contains(UInt8(ascii: "#")) { return .failure(Problem("has a fragment (#…), which is never sent to a server")) }
        if authority.utf8.contains(UInt8(ascii: "@")) {
            return .failure(Problem("names a user or password, which would appear in plans and logs"))
        }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return .failure(Problem("has an IPv6 address without its ']'")) }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return .failure(Problem("expected ':PORT' after the IPv6 address")) }
                portText = after.dropFirst()
            }
            guard !host.isEmpty, host.utf8.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }),
                host.utf8.contains(UInt8(ascii: ":"))
            else {
                return .failure(Problem("has an IPv6 address that is not one"))
            }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                host = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                host = authority
            }
            guard !host.isEmpty, host.utf8.count <= 253,
                host.utf8.allSatisfy({ isLetterOrDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }), !host.hasPrefix("-")
            else {
                return .failure(Problem("expected a host name, an IPv4 address or [IPv6], found \"\(host)\""))
            }
        }
        var port = 80
        if let portText {
            guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy(isDigit), let value = Int(portText),
                (1...65535).contains(value)
            else { return .failure(Problem("expected a port from 1 to 65535, found \"\(portText)\"")) }
            port = value
        }
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        return .success(HTTPURL(host: String(host), port: port, target: target))
    }

    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public let reason: String
        init(_ reason: String) { self.reason = reason }
        public var description: String { reason }
    }
}

private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

/// An ASCII letter in lower case; any other byte as it is.
private func lowercased(_ byte: UInt8) -> UInt8 { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 0x20 : byte }

private func isLetterOrDigit(_ byte: UInt8) -> Bool {
    isDigit(byte) || (lowercased(byte) >= UInt8(ascii: "a") && lowercased(byte) <= UInt8(ascii: "z"))
}

private func isHexDigit(_ byte: UInt8) -> Bool {
    isDigit(byte) || (lowercased(byte) >= UInt8(ascii: "a") && lowercased(byte) <= UInt8(ascii: "f"))
}
