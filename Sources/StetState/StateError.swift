import Foundation

/// A failure reading or writing the state directory. Names the operation and the path.
public struct StateError: Error, CustomStringConvertible, Sendable {
    private enum Base: Sendable {
        case io(Int32)
        case corrupt
        case invalidKey
        case unsafe
    }

    private let base: Base
    public let message: String

    public var description: String { message }

    public static func io(_ operation: String, _ code: Int32) -> StateError {
        StateError(base: .io(code), message: "cannot \(operation): \(String(cString: strerror(code)))")
    }

    public static func corrupt(_ path: String, _ detail: String) -> StateError {
        StateError(base: .corrupt, message: "state file \(path) is damaged: \(detail)")
    }

    /// A name or key that would leave the state directory, or is not in its form.
    public static func invalidKey(_ key: String, _ problem: String) -> StateError {
        let shown = key.utf8.count > 120 ? String(decoding: key.utf8.prefix(120), as: UTF8.self) + "…" : key
        return StateError(base: .invalidKey, message: "\"\(shown)\" cannot name a file in the state directory: \(problem)")
    }

    /// A state file or folder that someone other than Stet's user could change, or a link in
    /// place of one: Stet refuses it rather than trust what it holds. `fix` says what to do.
    public static func unsafe(_ path: String, _ problem: String, fix: String) -> StateError {
        StateError(base: .unsafe, message: "refusing \(path): \(problem); \(fix)")
    }
}
