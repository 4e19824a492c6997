import CYaml
import Foundation
import StetCore

/// Where a node starts in its file: line and column counted from 1, the column in characters
/// (as libyaml counts them).
struct Mark: Hashable, Sendable {
    let line: Int
    let column: Int
}

/// The nodes of one YAML stream, flat: every node in one array, in the order it starts (a list
/// or mapping before what it holds), and the text of every scalar in one byte array. However many
/// nodes a file has, its tree is a handful of allocations, freed at once; nodes name each other
/// by position. Tags are not kept: Stet types scalars by its own rules (`ScalarType`).
///
/// The tree also keeps what the readers of one file share: where problems are reported, and the
/// field names each mapping's reader asked for. A tree belongs to the one thread that decodes its
/// file.
final class YAMLTree {
    /// What a scalar can be read as, under YAML 1.2's core schema as far as Stet uses it (tags
    /// are not read): anything quoted or in a block is a string; a plain scalar is null, a
    /// boolean, a decimal integer, or a string. No timestamps, no octal, no `<<` merge keys.
    enum ScalarType: UInt8 { case null, bool, int, str }

    enum Kind: UInt8 { case scalar, sequence, mapping }

    struct Node {
        let kind: Kind
        /// A scalar's type (`.str` for a list or mapping).
        let type: ScalarType
        /// Whether a scalar's text holds a NUL (only an escape such as `"\0"` can put one there).
        let hasNUL: Bool
        /// Whether a scalar's text is ASCII: two ASCII texts are the same field name exactly when
        /// their bytes are.
        let isASCII: Bool
        let line: Int32
        let column: Int32
        /// A scalar: where its text starts in `text`. A list or mapping: unused.
        let start: Int32
        /// A scalar: the length of its text. A list or mapping: how many nodes it holds directly
        /// (its items; its keys and values).
        var count: Int32
        /// The position just past the last node inside it: where the node after it starts.
        var end: Int32

        var mark: Mark { Mark(line: Int(line), column: Int(column)) }
    }

    /// Largest text parsed: every position, length and line then fits an `Int32` (a stream has
    /// fewer than two nodes per byte). Manifests and trust policies are limited far below it.
    static let maximumBytes = 64 << 20

    fileprivate(set) var nodes: [Node] = []
    fileprivate(set) var text: [UInt8] = []
    /// The root node of each document, in order.
    fileprivate(set) var roots: [Int] = []
    let sink: DiagnosticSink
    /// Every field name a mapping's reader asked for, in the order asked (a name asked twice is
    /// here twice), each with where the same reader's name before it is (-1 for its first).
    /// Read only for a message about an unknown field, or by `ManifestSchema`; one array for the
    /// whole file, not one per mapping.
    @exclusivity(unchecked) var asked: [(previous: Int32, name: String)] = []

    init(sink: DiagnosticSink) { self.sink = sink }

    /// A cursor on each document's root, called by the field `""`.
    var documents: [Cursor] { roots.map { Cursor(tree: self, index: $0, field: "") } }

    /// The text of the scalar at `index` (empty for a list or mapping).
    func string(_ index: Int) -> String { withBytes(index) { String(decoding: $0, as: UTF8.self) } }

    /// The bytes of the scalar at `index` (none for a list or mapping), for `body`.
    func withBytes<R>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let node = nodes[index]
        guard node.kind == .scalar else { return body(UnsafeBufferPointer(start: nil, count: 0)) }
        return text.withUnsafeBufferPointer { all in
            body(UnsafeBufferPointer(rebasing: all[Int(node.start)..<Int(node.start) + Int(node.count)]))
        }
    }

    /// Whether the scalar at `index` is the field name `name` (whose bytes are `bytes`, ASCII or
    /// not as `nameIsASCII` says): compared as strings are, by canonical equivalence, so `K` and
    /// the Kelvin sign are one name, as they are one key to the dictionary a map of variables
    /// becomes. Two ASCII texts are equivalent exactly when their bytes are the same, which is
    /// compared in place; `name` is made only when one of them is not ASCII.
    func scalar(
        _ index: Int, is name: @autoclosure () -> String, bytes: UnsafeBufferPointer<UInt8>, nameIsASCII: Bool
    ) -> Bool {
        let node = nodes[index]
        guard node.isASCII, nameIsASCII else { return string(index) == name() }
        guard Int(node.count) == bytes.count else { return false }
        return bytes.isEmpty || withBytes(index) { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
    }

    /// Whether the scalars at `first` and `second` are the same field name (as `scalar(_:is:)`).
    func sameName(_ first: Int, _ second: Int) -> Bool {
        withBytes(second) { scalar(first, is: string(second), bytes: $0, nameIsASCII: nodes[second].isASCII) }
    }

    static func type(plain bytes: UnsafeBufferPointer<UInt8>) -> ScalarType {
        func spells(_ word: StaticString) -> Bool {
            bytes.count == word.utf8CodeUnitCount && memcmp(bytes.baseAddress!, word.utf8Start, bytes.count) == 0
        }
        switch bytes.count {
        case 0: return .null
        case 1 where bytes[0] == UInt8(ascii: "~"): return .null
        case 4 where spells("null") || spells("Null") || spells("NULL"): return .null
        case 4 where spells("true") || spells("True") || spells("TRUE"): return .bool
        case 5 where spells("false") || spells("False") || spells("FALSE"): return .bool
        default: return isDecimalInteger(bytes) ? .int : .str
        }
    }

    static func isDecimalInteger(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var digits = text[...]
        if let sign = digits.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") { digits = digits.dropFirst() }
        return !digits.isEmpty && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}

/// Every YAML file Stet reads goes through here: libyaml's parser, and a tree built straight
/// from its events.
///
/// Anchors and aliases are refused where the parser reports them, before anything is built: a
/// few hundred bytes of nested aliases expand to billions of nodes ("billion laughs"), and
/// trust.yaml and manifests are parsed before any signature is checked, so an unsigned push
/// could stall a host. Manifests never need them (and with Stet's own scalar typing `<<` is not
/// a merge key, only an unknown field). Since nothing is expanded, the tree is never larger than
/// the text, and libyaml limits nesting to 1,000 levels.
///
/// The text is read as UTF-8, always (the caller has checked it is).
enum SafeYAML {
    /// Reports of anchors (or of aliases) in one file; the first anchor is what matters.
    static let maximumAnchorReports = 10

    /// The documents of `text`, or nil after reporting why into `sink`.
    static func documents(_ text: String, sink: DiagnosticSink) -> [Cursor]? {
        var text = text
        return text.withUTF8 { documents(utf8: UnsafeRawBufferPointer($0), sink: sink) }
    }

    /// The documents of the UTF-8 bytes `utf8`, or nil after reporting why into `sink`.
    static func documents(utf8: UnsafeRawBufferPointer, sink: DiagnosticSink) -> [Cursor]? {
        guard utf8.count <= YAMLTree.maximumBytes else {
            sink.report(nil, "", "cannot parse YAML of more than \(YAMLTree.maximumBytes >> 20) MiB")
            return nil
        }
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        guard yaml_parser_initialize(parser) == 1 else {
            parser.deallocate()
            sink.report(nil, "", "cannot parse YAML: out of memory")
            return nil
        }
        defer {
            yaml_parser_delete(parser)
            parser.deallocate()
        }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        // Empty text is a stream without documents.
        guard let start = utf8.baseAddress, utf8.count > 0 else { return [] }
        yaml_parser_set_input_string(parser, start.assumingMemoryBound(to: UInt8.self), utf8.count)
        var builder = TreeBuilder(tree: YAMLTree(sink: sink), size: utf8.count)
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(parser, &event) == 1 else {
                report(parser.pointee, into: sink)
                return nil
            }
            let type = event.type
            builder.take(event)
            yaml_event_delete(&event)
            if type == YAML_STREAM_END_EVENT { break }
        }
        return builder.finish()?.documents
    }

    /// libyaml's own words for what is wrong, at the place it points to.
    private static func report(_ parser: yaml_parser_t, into sink: DiagnosticSink) {
        func text(_ pointer: UnsafePointer<CChar>?) -> String { pointer.map { String(cString: $0) } ?? "" }
        let mark = Mark(line: parser.problem_mark.line.saturatingAdd(1), column: parser.problem_mark.column.saturatingAdd(1))
        switch parser.error {
        case YAML_MEMORY_ERROR:
            sink.report(nil, "", "cannot parse YAML: out of memory")
        case YAML_READER_ERROR:
            sink.report(nil, "", "invalid YAML: \(text(parser.problem)) (at byte \(parser.problem_offset))")
        default:
            let context = parser.context.map { "\(String(cString: $0)) " } ?? ""
            sink.report(mark, "", "invalid YAML: \(context)\(text(parser.problem))")
        }
    }
}

private extension Int {
    /// One more, or `Int.max`: a position libyaml reports, counted from 1.
    func saturatingAdd(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}

/// Builds the tree of one stream from libyaml's events, with an explicit stack (so a thousand
/// levels of nesting cost a thousand entries of memory, not frames of the thread's stack). A
/// list or mapping takes its place when it starts; when it ends, it learns how many nodes it
/// holds and where the node after it will be.
private struct TreeBuilder {
    struct Open {
        let index: Int
        var count: Int32 = 0
    }

    private let tree: YAMLTree
    private var nodes: [YAMLTree.Node] = []
    private var text: [UInt8] = []
    private var roots: [Int] = []
    private var refused = false
    private var open: [Open] = []
    private var anchors = 0
    private var aliases = 0

    init(tree: YAMLTree, size: Int) {
        self.tree = tree
        // A manifest holds a node per seven bytes or so, and its scalars' text is most of it:
        // each array is allocated once, at about its final size.
        nodes.reserveCapacity(size / 6 + 8)
        text.reserveCapacity(size)
        open.reserveCapacity(16)
    }

    /// The tree, or nil when an anchor or alias was refused.
    consuming func finish() -> YAMLTree? {
        guard !refused else { return nil }
        tree.nodes = nodes
        tree.text = text
        tree.roots = roots
        return tree
    }

    mutating func take(_ event: yaml_event_t) {
        // Below `YAMLTree.maximumBytes`, a line or column always fits; clamped all the same.
        let line = Int32(clamping: event.start_mark.line.saturatingAdd(1))
        let column = Int32(clamping: event.start_mark.column.saturatingAdd(1))
        switch event.type {
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            refuse(anchor: scalar.anchor, line: line, column: column)
            let bytes = UnsafeBufferPointer(start: scalar.value, count: scalar.value == nil ? 0 : scalar.length)
            let type = scalar.style == YAML_PLAIN_SCALAR_STYLE ? YAMLTree.type(plain: bytes) : .str
            var hasNUL = false
            var isASCII = true
            for byte in bytes {
                if byte == 0 { hasNUL = true }
                if byte >= 0x80 { isASCII = false }
            }
            let start = Int32(clamping: text.count)
            text.append(contentsOf: bytes)
            add(YAMLTree.Node(
                kind: .scalar, type: type, hasNUL: hasNUL, isASCII: isASCII, line: line, column: column,
                start: start, count: Int32(clamping: bytes.count), end: 0))
        case YAML_SEQUENCE_START_EVENT:
            refuse(anchor: event.data.sequence_start.anchor, line: line, column: column)
            startCollection(.sequence, line: line, column: column)
        case YAML_MAPPING_START_EVENT:
            refuse(anchor: event.data.mapping_start.anchor, line: line, column: column)
            startCollection(.mapping, line: line, column: column)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let closed = open.popLast() else { break }
            nodes[closed.index].count = closed.count
            nodes[closed.index].end = Int32(clamping: nodes.count)
        case YAML_ALIAS_EVENT:
            // With an anchor already refused, an alias adds nothing to say.
            if anchors == 0, aliases < SafeYAML.maximumAnchorReports {
                tree.sink.report(Mark(line: Int(line), column: Int(column)), "", "aliases are not accepted: write the value out in full")
            }
            aliases += 1
            refused = true
            // Stands in for the node the alias names, so the pairs stay pairs.
            add(YAMLTree.Node(
                kind: .scalar, type: .null, hasNUL: false, isASCII: true, line: line, column: column,
                start: Int32(clamping: text.count), count: 0, end: 0))
        default:
            // Stream and document boundaries: a document's root arrives through `add`.
            break
        }
    }

    private mutating func refuse(anchor: UnsafeMutablePointer<yaml_char_t>?, line: Int32, column: Int32) {
        guard let anchor else { return }
        if anchors < SafeYAML.maximumAnchorReports {
            let name = TextEscaping.excerpt(String(cString: anchor), limit: 40)
            tree.sink.report(
                Mark(line: Int(line), column: Int(column)), "",
                "anchors and aliases are not accepted (found &\(name)): write the value out in full")
        }
        anchors += 1
        refused = true
    }

    private mutating func startCollection(_ kind: YAMLTree.Kind, line: Int32, column: Int32) {
        let index = nodes.count
        add(YAMLTree.Node(kind: kind, type: .str, hasNUL: false, isASCII: true, line: line, column: column, start: 0, count: 0, end: 0))
        open.append(Open(index: index))
    }

    /// Appends `node` (a scalar ends where it starts, one further on) to the list or mapping
    /// open innermost, or as the root of a document.
    private mutating func add(_ node: YAMLTree.Node) {
        var node = node
        if node.kind == .scalar { node.end = Int32(clamping: nodes.count + 1) }
        if open.isEmpty { roots.append(nodes.count) } else { open[open.count - 1].count += 1 }
        nodes.append(node)
    }
}
