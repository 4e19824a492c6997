import Foundation
import StetCore

/// Collects the diagnostics of one file while its documents are read: the first
/// `maximumDiagnostics`, then one that says how many more there were, so a hostile file cannot
/// make an error report (or the refusal recorded from it) as large as itself.
final class DiagnosticSink {
    static let maximumDiagnostics = 100

    let file: String
    private(set) var diagnostics: [Diagnostic] = []
    private var dropped = 0
    /// Every field path a mapping's reader accepted, and whether it was required: nil unless
    /// `ManifestSchema` asks, so decoding a release pays nothing for it.
    var accepted: [String: Bool]?

    init(file: String) { self.file = file }

    func report(_ mark: Mark?, _ field: String, _ message: String) {
        guard diagnostics.count < Self.maximumDiagnostics else {
            dropped += 1
            let summary = Diagnostic(
                location: SourceLocation(file: file, line: 1, column: 1), field: "",
                message: "\(dropped) more problem\(dropped == 1 ? "" : "s") not shown")
            if dropped == 1 { diagnostics.append(summary) } else { diagnostics[diagnostics.count - 1] = summary }
            return
        }
        let location = SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
        diagnostics.append(Diagnostic(location: location, field: field, message: TextEscaping.excerpt(message, limit: 400)))
    }
}

/// Where a field is, as messages name it (`spec.run.command[1]`): the path of the mapping or
/// list that holds it and one step more. Built into text only when a message needs it, since
/// nearly every file has none; a new path object is made once per mapping or list entered.
final class FieldPath {
    enum Step {
        /// A whole path given as text (the document itself is `""`).
        case text(String)
        case field(String)
        case item(Int)
    }

    let parent: FieldPath?
    let step: Step
    @exclusivity(unchecked) private var joined: String?

    init(_ parent: FieldPath?, _ step: Step) {
        self.parent = parent
        self.step = step
    }

    var text: String {
        if let joined { return joined }
        let made = Self.text(parent, step)
        joined = made
        return made
    }

    static func text(_ parent: FieldPath?, _ step: Step) -> String {
        switch step {
        case .text(let text): return text
        case .field(let name):
            let base = parent?.text ?? ""
            return base.isEmpty ? name : base + "." + name
        case .item(let index): return (parent?.text ?? "") + "[\(index)]"
        }
    }
}

/// A YAML node, the dotted path of the field it is, and where to report problems. Each typed
/// accessor returns nil after reporting what was expected, so a reader goes on and finds every
/// problem of a file in one pass.
struct Cursor {
    let node: Node
    let sink: DiagnosticSink
    /// The mapping or list that holds the node, and which of its fields or items the node is.
    private let parent: FieldPath?
    private let step: FieldPath.Step

    init(node: Node, field: String, sink: DiagnosticSink) {
        self.init(node: node, parent: nil, step: .text(field), sink: sink)
    }

    init(node: Node, parent: FieldPath?, step: FieldPath.Step, sink: DiagnosticSink) {
        self.node = node
        self.parent = parent
        self.step = step
        self.sink = sink
    }

    /// The dotted path of the field, as messages name it.
    var field: String { FieldPath.text(parent, step) }

    /// The path of this node, for the fields or items below it.
    var path: FieldPath { FieldPath(parent, step) }

    var mark: Mark? { node.mark }

    /// What a scalar can be read as.
    typealias ScalarType = Node.ScalarType

    /// The scalar's type (`Node.ScalarType`, decided once when the tree is built).
    static func tagName(_ scalar: Node.Scalar) -> ScalarType { scalar.type }

    func error(_ message: String) { sink.report(mark, field, message) }

    /// How the node reads in a message: `"two"`, `a list`, `a mapping`.
    var found: String {
        switch node {
        case .scalar(let scalar):
            if Cursor.tagName(scalar) == .null { return "nothing" }
            let text = scalar.string.count > 40 ? String(scalar.string.prefix(40)) + "…" : scalar.string
            return "\"\(text)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    private func expected(_ what: String) { error("expected \(what), found \(found)") }

    var isNull: Bool {
        if case .scalar(let scalar) = node, Cursor.tagName(scalar) == .null { return true }
        return false
    }

    func string(nonEmpty: Bool = true) -> String? {
        guard case .scalar(let scalar) = node, Cursor.tagName(scalar) == .str else {
            if case .scalar(let scalar) = node, Cursor.tagName(scalar) != .null {
                expected("a string (quote it: \"\(scalar.string)\")")
            } else {
                expected("a string")
            }
            return nil
        }
        if nonEmpty, scalar.string.isEmpty {
            error("expected a non-empty string")
            return nil
        }
        // A NUL would cut the text short wherever it meets C (a command line, an environment,
        // a path), silently: refused wherever it stands.
        if scalar.hasNUL {
            error("expected text without a NUL character")
            return nil
        }
        return scalar.string
    }

    func int(in range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node, Cursor.tagName(scalar) == .int, let value = Int(scalar.string),
            range.contains(value)
        else {
            let bound = range.upperBound == Int.max ? "≥ \(range.lowerBound)" : "from \(range.lowerBound) to \(range.upperBound)"
            expected("a whole number \(bound)")
            return nil
        }
        return value
    }

    func bool() -> Bool? {
        guard case .scalar(let scalar) = node, Cursor.tagName(scalar) == .bool else {
            expected("true or false")
            return nil
        }
        return scalar.string.lowercased() == "true"
    }

    /// A duration no longer than `bound` (every duration has one: `StetDuration.maximum` at
    /// most, so whatever uses it can represent it).
    func duration(positive: Bool = true, atMost bound: StetDuration = .maximum) -> StetDuration? {
        guard case .scalar(let scalar) = node, Cursor.tagName(scalar) == .str || Cursor.tagName(scalar) == .int else {
            expected("a duration such as 500ms, 30s, 1h30m or 7d")
            return nil
        }
        let value: StetDuration
        switch StetDuration.parse(scalar.string) {
        case .success(let parsed) where parsed <= bound: value = parsed
        case .success, .failure(.tooLong):
            expected("a duration of at most \(bound)")
            return nil
        case .failure(.malformed):
            expected("a duration such as 500ms, 30s, 1h30m or 7d")
            return nil
        }
        if positive, value.milliseconds == 0 {
            error("expected a duration longer than 0s")
            return nil
        }
        return value
    }

    func oneOf<E: RawRepresentable & CaseIterable>(_: E.Type) -> E? where E.RawValue == String {
        guard case .scalar(let scalar) = node, Cursor.tagName(scalar) == .str, let value = E(rawValue: scalar.string) else {
            expected("one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        return value
    }

    func list() -> [Cursor]? {
        guard case .sequence(let sequence) = node else {
            expected("a list")
            return nil
        }
        let path = path
        return sequence.items.enumerated().map { Cursor(node: $1, parent: path, step: .item($0), sink: sink) }
    }

    func stringList(nonEmpty: Bool = false) -> [String]? {
        guard let items = list() else { return nil }
        if nonEmpty, items.isEmpty {
            error("expected at least one item")
            return nil
        }
        let strings = items.compactMap { $0.string() }
        return strings.count == items.count ? strings : nil
    }

    /// A mapping of strings to strings (labels, env). Keys must be strings and unique.
    func stringMap(keyRule: ((String) -> String?)? = nil) -> [String: String]? {
        guard let mapping = mapping() else { return nil }
        var result: [String: String] = [:]
        var ok = true
        for (key, value) in mapping.entries {
            if let problem = keyRule?(key.text) {
                key.cursor.error(problem)
                ok = false
            }
            if let text = value.string(nonEmpty: false) { result[key.text] = text } else { ok = false }
        }
        return ok ? result : nil
    }

    func mapping() -> MappingReader? {
        guard case .mapping(let mapping) = node else {
            expected("a mapping")
            return nil
        }
        return MappingReader(mapping: mapping, cursor: self)
    }
}

/// Reads the fields of a mapping once each. `finish()` reports keys nobody asked for, so an
/// unknown or misspelt field is an error, not silently ignored, and a field given twice is
/// reported where it is given again. One reader belongs to the one thread that decodes its
/// file, so its fields skip the runtime's exclusivity checks (a tenth of decoding).
final class MappingReader {
    struct Key {
        let text: String
        let cursor: Cursor
    }

    /// One field of the mapping: its name, key and value, and whether a reader asked for it.
    private struct Field {
        let name: String
        let key: Node
        let value: Node
        var used = false
    }

    let cursor: Cursor
    /// The path of the mapping, shared by the cursors of its fields.
    private let path: FieldPath
    /// The fields in file order, each name once (one array: a reader is made for every mapping
    /// of every file, and each array it holds is an allocation).
    @exclusivity(unchecked) private var fields: [Field] = []
    /// Position of each field, for a mapping too large to search: a lookup then costs the same
    /// in a mapping of any size. Manifests' mappings are a few fields, searched in order.
    private var positions: [String: Int]?
    /// Every name a reader asked for, present or not, in order (a name asked twice is here
    /// twice: only a message or the schema reads the list, and each takes every name once).
    @exclusivity(unchecked) private var asked: [String] = []
    /// Whether `ManifestSchema` is collecting the names the readers accept.
    private let collecting: Bool
    /// The fields asked for with `required`, kept only while `ManifestSchema` collects.
    private var requiredNames: Set<String> = []

    static let searchedInOrder = 16

    init(mapping: Node.Mapping, cursor: Cursor) {
        self.cursor = cursor
        path = cursor.path
        collecting = cursor.sink.accepted != nil
        let count = mapping.pairs.count
        fields.reserveCapacity(count)
        // Readers ask for a few fields more than a mapping has, most of them absent.
        asked.reserveCapacity(count + 8)
        if count > Self.searchedInOrder { positions = Dictionary(minimumCapacity: count) }
        for (keyNode, valueNode) in mapping.pairs {
            guard case .scalar(let scalar) = keyNode, scalar.type != .null else {
                let keyCursor = Cursor(node: keyNode, parent: nil, step: .text(cursor.field), sink: cursor.sink)
                keyCursor.error("expected field names to be strings, found \(keyCursor.found)")
                continue
            }
            let name = scalar.string
            if scalar.hasNUL {
                child(keyNode, name).error("expected a field name without a NUL character")
                continue
            }
            if let first = position(of: name) {
                let at = fields[first].key.mark
                child(keyNode, name).error("duplicate field (first at line \(at.line))")
                continue
            }
            positions?[name] = fields.count
            fields.append(Field(name: name, key: keyNode, value: valueNode))
        }
    }

    private func position(of name: String) -> Int? {
        if let positions { return positions[name] }
        // Compared as strings, by canonical equivalence (not by length or bytes): `K` and the
        // Kelvin sign are one key to the dictionary a map of variables becomes, so they are one
        // field here too, and the second is refused as given twice.
        return fields.firstIndex { $0.name == name }
    }

    private func child(_ node: Node, _ name: String) -> Cursor {
        Cursor(node: node, parent: path, step: .field(name), sink: cursor.sink)
    }

    /// Every field with its key, in file order, taken as read (a map of labels or variables).
    var entries: [(Key, Cursor)] {
        fields.indices.map { index in
            fields[index].used = true
            let field = fields[index]
            return (Key(text: field.name, cursor: child(field.key, field.name)), child(field.value, field.name))
        }
    }

    /// The field's value, if present; marks it known.
    func optional(_ name: String) -> Cursor? {
        asked.append(name)
        guard let index = position(of: name) else { return nil }
        fields[index].used = true
        return child(fields[index].value, name)
    }

    /// An optional field: `defaultValue` when absent, the decoded value when valid, nil once
    /// `decode` has reported why it is not.
    func field<T>(_ name: String, default defaultValue: T, _ decode: (Cursor) -> T?) -> T? {
        guard let value = optional(name) else { return defaultValue }
        return decode(value)
    }

    /// An optional field without a default: `.some(nil)` when absent, `.some(value)` when valid,
    /// nil once `decode` has reported why it is not.
    func field<T>(_ name: String, _ decode: (Cursor) -> T?) -> T?? {
        guard let value = optional(name) else { return .some(nil) }
        return decode(value).map { .some($0) }
    }

    /// The field's value; reports it missing otherwise.
    func required(_ name: String, _ what: @autoclosure () -> String) -> Cursor? {
        if collecting { requiredNames.insert(name) }
        if let value = optional(name) { return value }
        cursor.sink.report(cursor.mark, FieldPath.text(path, .field(name)), "missing required field (\(what()))")
        return nil
    }

    /// Exactly one of `names` must be present. Returns its name and value.
    func exactlyOne(of names: [String]) -> (String, Cursor)? {
        let present = names.compactMap { name in optional(name).map { (name, $0) } }
        switch present.count {
        case 1: return present[0]
        case 0: cursor.error("expected exactly one of \(names.joined(separator: ", "))")
        default: present[1].1.error("only one of \(names.joined(separator: ", ")) may be set; found \(present.map(\.0).joined(separator: " and "))")
        }
        return nil
    }

    /// Reports every field that no reader took. The fields taken are the ones the mapping
    /// accepts, which `ManifestSchema` collects.
    func finish() {
        if collecting {
            for name in Set(asked) {
                let field = FieldPath.text(path, .field(name))
                let required = requiredNames.contains(name) || cursor.sink.accepted?[field] == true
                cursor.sink.accepted?[field] = required
            }
        }
        guard fields.contains(where: { !$0.used }) else { return }
        let known = Set(asked).sorted().joined(separator: ", ")
        for field in fields where !field.used {
            child(field.key, field.name).error("unknown field (expected one of: \(known))")
        }
    }
}
