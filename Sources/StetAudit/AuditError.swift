import Foundation

/// Why the audit log cannot be read or written.
public struct AuditError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable {
        /// A system call failed.
        case io
        /// A complete line fails a check: nothing more is appended until a person looks.
        case tampered
        /// Another process holds the log's lock past the timeout.
        case locked
        /// The acting key may not sign audit entries.
        case untrustedKey
        /// A checkpoint or proof that does not parse or verify.
        case invalid
    }

    public let code: Code
    public let message: String
    public let failure: AuditFailure?

    public init(_ code: Code, _ message: String, failure: AuditFailure? = nil) {
        self.code = code
        self.message = message
        self.failure = failure
    }

    public var description: String { message }

    static func io(_ operation: String, _ number: Int32) -> AuditError {
        AuditError(.io, "cannot \(operation): \(String(cString: strerror(number)))")
    }

    static func tampered(_ failure: AuditFailure, path: String) -> AuditError {
        AuditError(
            .tampered,
            "\(path) fails verification at \(failure); nothing more is appended until the log is investigated "
                + "(`stet audit verify` shows the first bad line)",
            failure: failure)
    }
}
