import Foundation

/// A failure reading or writing the state directory. Names the operation and the path.
public struct StateError: Error, CustomStringConvertible, Sendable {
    private enum Base: Sendable {
        case io(Int32)
        case corrupt
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
}
