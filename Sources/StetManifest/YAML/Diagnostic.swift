public import StetCore

/// One problem in one input file, pointing at the line and column where it is.
public struct Diagnostic: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public let location: SourceLocation
    /// Dotted path of the field (`spec.run.command[1]`), empty for the document itself.
    public let field: String
    /// What is wrong and what was expected.
    public let message: String

    public init(location: SourceLocation, field: String, message: String) {
        self.location = location
        self.field = field
        self.message = message
    }

    public var description: String {
        field.isEmpty ? "\(location): \(message)" : "\(location): \(field): \(message)"
    }

    public static func < (lhs: Diagnostic, rhs: Diagnostic) -> Bool {
        (lhs.location.file, lhs.location.line, lhs.location.column, lhs.message)
            < (rhs.location.file, rhs.location.line, rhs.location.column, rhs.message)
    }
}

/// Every problem found in a set of manifests, sorted by file, line and column.
public struct ManifestError: Error, CustomStringConvertible, Sendable {
    public let diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics.sorted() }

    public var description: String { lines.joined(separator: "\n") }

    /// Each problem, then the count, each as one line.
    public var lines: [String] {
        let count = diagnostics.count
        return diagnostics.map(\.description) + ["\(count) error\(count == 1 ? "" : "s") in the manifests"]
    }
}
