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
/// nearly every file has none; a new path object is made once per mapping or list entered (a
/// mapping's reader is the path of its fields, one object for both).
class FieldPath {
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
    /// The tree of the file, and the node's position in it.
    let tree: YAMLTree
    let index: Int
    /// The mapping or list that holds the node, and which of its fields or items the node is.
    let parent: FieldPath?
    let step: FieldPath.Step

    init(tree: YAMLTree, index: Int, field: String) {
        self.init(tree: tree, index: index, parent: nil, step: .text(field))
    }

    init(tree: YAMLTree, index: Int, parent: FieldPath?, step: FieldPath.Step) {
        self.tree = tree
        self.index = index
        self.parent = parent
        self.step = step
    }

    var sink: DiagnosticSink { tree.sink }

    private var node: YAMLTree.Node { tree.nodes[index] }

    /// The dotted path of the field, as messages name it.
    var field: String { FieldPath.text(parent, step) }

    /// The path of this node, for the fields or items below it.
    var path: FieldPath { FieldPath(parent, step) }

    var mark: Mark? { node.mark }

    /// Where the node is and which field it is, as text: kept after the file is decoded (a
    /// reference to check once every file is read), it holds nothing of the file's tree or
    /// readers.
    var place: Place { Place(file: sink.file, mark: node.mark, field: field) }

    struct Place {
        let file: String
        let mark: Mark
        let field: String
    }

    func error(_ message: String) { sink.report(mark, field, message) }

    /// How the node reads in a message: `"two"`, `a list`, `a mapping`.
    var found: String {
        let node = node
        switch node.kind {
        case .scalar:
            if node.type == .null { return "nothing" }
            let string = tree.string(index)
            let text = string.count > 40 ? String(string.prefix(40)) + "…" : string
            return "\"\(text)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    private func expected(_ what: String) { error("expected \(what), found \(found)") }

    /// A scalar of type `type`: its node, or nil.
    private func scalar(_ type: YAMLTree.ScalarType) -> YAMLTree.Node? {
        let node = node
        return node.kind == .scalar && node.type == type ? node : nil
    }

    var isNull: Bool { scalar(.null) != nil }

    func string(nonEmpty: Bool = true) -> String? {
        guard let scalar = scalar(.str) else {
            if node.kind == .scalar, node.type != .null {
                expected("a string (quote it: \"\(tree.string(index))\")")
            } else {
                expected("a string")
            }
            return nil
        }
        if nonEmpty, scalar.count == 0 {
            error("expected a non-empty string")
            return nil
        }
        // A NUL would cut the text short wherever it meets C (a command line, an environment,
        // a path), silently: refused wherever it stands.
        if scalar.hasNUL {
            error("expected text without a NUL character")
            return nil
        }
        return tree.string(index)
    }

    func int(in range: ClosedRange<Int>) -> Int? {
        guard scalar(.int) != nil, let value = tree.withBytes(index, Cursor.decimal), range.contains(value) else {
            let bound = range.upperBound == Int.max ? "≥ \(range.lowerBound)" : "from \(range.lowerBound) to \(range.upperBound)"
            expected("a whole number \(bound)")
            return nil
        }
        return value
    }

    /// The value of a decimal integer (`YAMLTree.isDecimalInteger`), read from its bytes as
    /// `Int(_:)` reads its text: nil when it does not fit.
    static func decimal(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var digits = bytes[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative || digits.first == UInt8(ascii: "+") { digits = digits.dropFirst() }
        guard !digits.isEmpty else { return nil }
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let digit = Int(byte &- UInt8(ascii: "0"))
            let (times, overflow) = value.multipliedReportingOverflow(by: 10)
            // Negative numbers are summed downwards, so Int.min is reached.
            let (next, overflowAgain) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !overflow, !overflowAgain else { return nil }
            value = next
        }
        return value
    }

    func bool() -> Bool? {
        guard scalar(.bool) != nil else {
            expected("true or false")
            return nil
        }
        // A boolean is spelt true, True, TRUE or one of the same for false.
        return tree.withBytes(index) { $0.first == UInt8(ascii: "t") || $0.first == UInt8(ascii: "T") }
    }

    /// A duration no longer than `bound` (every duration has one: `StetDuration.maximum` at
    /// most, so whatever uses it can represent it).
    func duration(positive: Bool = true, atMost bound: StetDuration = .maximum) -> StetDuration? {
        guard scalar(.str) != nil || scalar(.int) != nil else {
            expected("a duration such as 500ms, 30s, 1h30m or 7d")
            return nil
        }
        let value: StetDuration
        switch StetDuration.parse(tree.string(index)) {
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
        guard scalar(.str) != nil, let value = E(rawValue: tree.string(index)) else {
            expected("one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        return value
    }

    func list() -> [Cursor]? {
        let node = node
        guard node.kind == .sequence else {
            expected("a list")
            return nil
        }
        let path = path
        let count = Int(node.count)
        var items: [Cursor] = []
        items.reserveCapacity(count)
        var item = index + 1
        for ordinal in 0..<count {
            items.append(Cursor(tree: tree, index: item, parent: path, step: .item(ordinal)))
            item = Int(tree.nodes[item].end)
        }
        return items
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
        guard node.kind == .mapping else {
            expected("a mapping")
            return nil
        }
        return MappingReader(cursor: self)
    }
}

/// Reads the fields of a mapping once each. `finish()` reports keys nobody asked for, so an
/// unknown or misspelt field is an error, not silently ignored, and a field given twice is
/// reported where it is given again. One reader belongs to the one thread that decodes its
/// file, so its fields skip the runtime's exclusivity checks (a tenth of decoding).
///
/// The fields are read where they are in the file's tree: a mapping of up to `searchedInOrder`
/// pairs (every mapping of a usual manifest) is searched in place, and what the reader knows of
/// it is two bit sets; a larger one gets an index of its names. The reader is the path of the
/// mapping, which the cursors of its fields share.
final class MappingReader: FieldPath {
    struct Key {
        let text: String
        let cursor: Cursor
    }

    let cursor: Cursor
    private let tree: YAMLTree
    /// How many key-value pairs the mapping holds.
    private let pairs: Int
    /// For a small mapping, bit `n` is set when pair `n` is a field: its key a name (a scalar,
    /// not null, without NUL) not given before in the mapping.
    private var fields: UInt64 = 0
    /// For a small mapping, bit `n` is set once a reader has taken pair `n`.
    @exclusivity(unchecked) private var used: UInt64 = 0
    /// A larger mapping's fields: the pair and key of each name, and which pairs are fields and
    /// which were taken. A lookup then costs the same in a mapping of any size.
    @exclusivity(unchecked) private var large: Large?
    /// Where this reader's last name asked is in `tree.asked` (-1 before the first): each entry
    /// there points to the one before it, so the reader walks its own names only.
    @exclusivity(unchecked) private var lastAsked: Int32 = -1
    /// Whether `ManifestSchema` is collecting the names the readers accept.
    private let collecting: Bool
    /// The fields asked for with `required`, kept only while `ManifestSchema` collects.
    private var requiredNames: Set<String> = []

    private struct Large {
        var positions: [String: (pair: Int, key: Int)]
        var isField: [Bool]
        var used: [Bool]
    }

    static let searchedInOrder = 16

    init(cursor: Cursor) {
        self.cursor = cursor
        tree = cursor.tree
        collecting = cursor.sink.accepted != nil
        // libyaml gives every key a value (an empty one when none is written).
        pairs = Int(tree.nodes[cursor.index].count) / 2
        if pairs > Self.searchedInOrder {
            large = Large(
                positions: Dictionary(minimumCapacity: pairs), isField: Array(repeating: false, count: pairs),
                used: Array(repeating: false, count: pairs))
        }
        super.init(cursor.parent, cursor.step)
        forEachPair { pair, key, _ in
            let node = tree.nodes[key]
            guard node.kind == .scalar, node.type != .null else {
                let keyCursor = Cursor(tree: tree, index: key, parent: nil, step: .text(cursor.field))
                keyCursor.error("expected field names to be strings, found \(keyCursor.found)")
                return true
            }
            if node.hasNUL {
                child(key, tree.string(key)).error("expected a field name without a NUL character")
                return true
            }
            if large != nil {
                let name = tree.string(key)
                if let first = large!.positions[name] {
                    child(key, name).error("duplicate field (first at line \(tree.nodes[first.key].line))")
                    return true
                }
                large!.positions[name] = (pair, key)
                large!.isField[pair] = true
                return true
            }
            var first: Int?
            forEachPair { earlier, earlierKey, _ in
                guard earlier < pair else { return false }
                if isField(earlier), tree.sameName(earlierKey, key) { first = earlierKey }
                return first == nil
            }
            if let first {
                child(key, tree.string(key)).error("duplicate field (first at line \(tree.nodes[first].line))")
                return true
            }
            fields |= 1 << UInt64(pair)
            return true
        }
    }

    /// `body` of each pair's number, key and value, in file order, while it returns true.
    private func forEachPair(_ body: (_ pair: Int, _ key: Int, _ value: Int) -> Bool) {
        var key = cursor.index + 1
        for pair in 0..<pairs {
            let value = Int(tree.nodes[key].end)
            guard body(pair, key, value) else { return }
            key = Int(tree.nodes[value].end)
        }
    }

    private func isField(_ pair: Int) -> Bool {
        if let large { return large.isField[pair] }
        return fields & (1 << UInt64(pair)) != 0
    }

    private func isUsed(_ pair: Int) -> Bool {
        if let large { return large.used[pair] }
        return used & (1 << UInt64(pair)) != 0
    }

    private func markUsed(_ pair: Int) {
        if large != nil { large!.used[pair] = true } else { used |= 1 << UInt64(pair) }
    }

    /// The pair and value of the field `name`, if the mapping has it.
    private func find(_ name: String) -> (pair: Int, value: Int)? {
        if let large {
            guard let position = large.positions[name] else { return nil }
            return (position.pair, Int(tree.nodes[position.key].end))
        }
        var text = name
        return text.withUTF8 { bytes in
            let nameIsASCII = bytes.allSatisfy { $0 < 0x80 }
            var found: (pair: Int, value: Int)?
            forEachPair { pair, key, value in
                if isField(pair), tree.scalar(key, is: name, bytes: bytes, nameIsASCII: nameIsASCII) { found = (pair, value) }
                return found == nil
            }
            return found
        }
    }

    private func child(_ index: Int, _ name: String) -> Cursor {
        Cursor(tree: tree, index: index, parent: self, step: .field(name))
    }

    /// Every field with its key, in file order, taken as read (a map of labels or variables).
    var entries: [(Key, Cursor)] {
        var entries: [(Key, Cursor)] = []
        forEachPair { pair, key, value in
            guard isField(pair) else { return true }
            markUsed(pair)
            let name = tree.string(key)
            entries.append((Key(text: name, cursor: child(key, name)), child(value, name)))
            return true
        }
        return entries
    }

    /// The field's value, if present; marks it known.
    func optional(_ name: String) -> Cursor? {
        // A manifest's readers ask for some dozens of names; more only grow the array.
        if tree.asked.isEmpty { tree.asked.reserveCapacity(64) }
        let previous = lastAsked
        lastAsked = Int32(truncatingIfNeeded: tree.asked.count)
        tree.asked.append((previous, name))
        guard let (pair, value) = find(name) else { return nil }
        markUsed(pair)
        return child(value, name)
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
        cursor.sink.report(cursor.mark, FieldPath.text(self, .field(name)), "missing required field (\(what()))")
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

    /// Every name this mapping's readers asked for, each once.
    private var asked: Set<String> {
        var names: Set<String> = []
        var entry = Int(lastAsked)
        while entry >= 0 {
            names.insert(tree.asked[entry].name)
            entry = Int(tree.asked[entry].previous)
        }
        return names
    }

    /// Reports every field that no reader took. The fields taken are the ones the mapping
    /// accepts, which `ManifestSchema` collects.
    func finish() {
        if collecting {
            for name in asked {
                let field = FieldPath.text(self, .field(name))
                let required = requiredNames.contains(name) || cursor.sink.accepted?[field] == true
                cursor.sink.accepted?[field] = required
            }
        }
        var unknown: [Int] = []
        forEachPair { pair, key, _ in
            if isField(pair), !isUsed(pair) { unknown.append(key) }
            return true
        }
        guard !unknown.isEmpty else { return }
        let known = asked.sorted().joined(separator: ", ")
        for key in unknown {
            child(key, tree.string(key)).error("unknown field (expected one of: \(known))")
        }
    }
}
