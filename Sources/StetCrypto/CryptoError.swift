internal import COpenSSL

/// An error from Stet's cryptography: a key that cannot be read or used, a malformed envelope,
/// or a failure inside OpenSSL (whose own message is kept).
public struct CryptoError: Error, Equatable, CustomStringConvertible, Sendable {
    private enum Base: Equatable, Sendable {
        case openssl
        case notEd25519
        case badKeyFile
        case insecureKeyFile
        case malformed
    }

    private let base: Base
    /// What went wrong, for a person: names the file or the field and what was expected.
    public let message: String

    private init(_ base: Base, _ message: String) {
        self.base = base
        self.message = message
    }

    public var description: String { message }

    /// OpenSSL failed; `message` ends with the messages OpenSSL queued for this thread.
    public static func openssl(_ operation: String) -> CryptoError {
        CryptoError(.openssl, "\(operation) failed: \(drainOpenSSLErrors())")
    }

    public static func notEd25519(_ what: String) -> CryptoError {
        CryptoError(.notEd25519, "\(what) is not an Ed25519 key (Stet signs with Ed25519 only)")
    }

    public static func badKeyFile(_ message: String) -> CryptoError { CryptoError(.badKeyFile, message) }

    public static func insecureKeyFile(_ message: String) -> CryptoError { CryptoError(.insecureKeyFile, message) }

    public static func malformed(_ message: String) -> CryptoError { CryptoError(.malformed, message) }

    /// True when the error is a private key file that group or others can read.
    public var isInsecureKeyFile: Bool { base == .insecureKeyFile }
}

/// Takes every error OpenSSL queued on this thread and joins their texts. Always empties the
/// queue, so a stale error never shows up in a later, unrelated message.
func drainOpenSSLErrors() -> String {
    var messages: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return messages.isEmpty ? "no detail from OpenSSL" : messages.joined(separator: "; ")
}
