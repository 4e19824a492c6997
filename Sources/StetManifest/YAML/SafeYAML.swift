import CYaml
import Foundation
import StetCore

/// Where a node starts in its file: line and column counted from 1, the column in characters
/// (as libyaml counts them).
struct Mark: Hashable, Sendable {
    let line: Int
    let column: Int
}

/// A YAML node as Stet reads it: the text of a scalar and its type (`ScalarType`), or a list,
/// or a mapping with its pairs in file order. Tags are not kept: Stet types scalars by its own
/// rules.
enum Node {
    case scalar(Scalar)
    case sequence(Sequence)
    case mapping(Mapping)

    struct Scalar {
        let string: String
        let type: ScalarType
        /// Whether the text holds a NUL (only an escape such as `"\0"` can put one there).
        let hasNUL: Bool
        let mark: Mark
    }

    /// What a scalar can be read as, under YAML 1.2's core schema as far as Stet uses it (tags
    /// are not read): anything quoted or in a block is a string; a plain scalar is null, a
    /// boolean, a decimal integer, or a string. No timestamps, no octal, no `<<` merge keys.
    enum ScalarType { case null, bool, int, str }

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

    struct Sequence {
        let items: [Node]
        let mark: Mark
    }

    struct Mapping {
        let pairs: [(key: Node, value: Node)]
        let mark: Mark
    }

    var mark: Mark {
        switch self {
        case .scalar(let scalar): scalar.mark
        case .sequence(let sequence): sequence.mark
        case .mapping(let mapping): mapping.mark
        }
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
    static func documents(_ text: String, sink: DiagnosticSink) -> [Node]? {
        var text = text
        return text.withUTF8 { documents(utf8: UnsafeRawBufferPointer($0), sink: sink) }
    }

    /// The documents of the UTF-8 bytes `utf8`, or nil after reporting why into `sink`.
    static func documents(utf8: UnsafeRawBufferPointer, sink: DiagnosticSink) -> [Node]? {
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
        var builder = TreeBuilder(sink: sink)
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
        return builder.refused ? nil : builder.roots
    }

    /// libyaml's own words for what is wrong, at the place it points to.
    private static func report(_ parser: yaml_parser_t, into sink: DiagnosticSink) {
        func text(_ pointer: UnsafePointer<CChar>?) -> String { pointer.map { String(cString: $0) } ?? "" }
        let mark = Mark(line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1)
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

/// Builds the documents of one stream from libyaml's events, with explicit stacks (so a
/// thousand levels of nesting cost a thousand entries of memory, not frames of the thread's
/// stack). The nodes of every open list and mapping wait in one array, innermost last; when one
/// ends, its nodes are copied into an array of exactly their number: no array grows twice.
private struct TreeBuilder {
    struct Open {
        let mark: Mark
        let isMapping: Bool
        /// Where its nodes start in `pending`.
        let start: Int
    }

    let sink: DiagnosticSink
    private(set) var roots: [Node] = []
    private(set) var refused = false
    private var open: [Open] = []
    private var pending: [Node] = []
    private var anchors = 0
    private var aliases = 0

    init(sink: DiagnosticSink) {
        self.sink = sink
        // Enough for a manifest: growing an array from empty is an allocation per doubling.
        open.reserveCapacity(16)
        pending.reserveCapacity(64)
    }

    mutating func take(_ event: yaml_event_t) {
        let mark = Mark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
        switch event.type {
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            refuse(anchor: scalar.anchor, at: mark)
            let bytes = UnsafeBufferPointer(start: scalar.value, count: scalar.value == nil ? 0 : scalar.length)
            let string = String(decoding: bytes, as: UTF8.self)
            let type = scalar.style == YAML_PLAIN_SCALAR_STYLE ? Node.type(plain: bytes) : .str
            add(.scalar(Node.Scalar(string: string, type: type, hasNUL: bytes.contains(0), mark: mark)))
        case YAML_SEQUENCE_START_EVENT:
            refuse(anchor: event.data.sequence_start.anchor, at: mark)
            open.append(Open(mark: mark, isMapping: false, start: pending.count))
        case YAML_MAPPING_START_EVENT:
            refuse(anchor: event.data.mapping_start.anchor, at: mark)
            open.append(Open(mark: mark, isMapping: true, start: pending.count))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            if let closed = open.popLast() { add(close(closed)) }
        case YAML_ALIAS_EVENT:
            // With an anchor already refused, an alias adds nothing to say.
            if anchors == 0, aliases < SafeYAML.maximumAnchorReports {
                sink.report(mark, "", "aliases are not accepted: write the value out in full")
            }
            aliases += 1
            refused = true
            // Stands in for the node the alias names, so the pairs stay pairs.
            add(.scalar(Node.Scalar(string: "", type: .null, hasNUL: false, mark: mark)))
        default:
            // Stream and document boundaries: a document's root arrives through `add`.
            break
        }
    }

    private mutating func refuse(anchor: UnsafeMutablePointer<yaml_char_t>?, at mark: Mark) {
        guard let anchor else { return }
        if anchors < SafeYAML.maximumAnchorReports {
            let name = TextEscaping.excerpt(String(cString: anchor), limit: 40)
            sink.report(mark, "", "anchors and aliases are not accepted (found &\(name)): write the value out in full")
        }
        anchors += 1
        refused = true
    }

    /// The node of a list or mapping that ended, made of the nodes waiting since it opened.
    private mutating func close(_ closed: Open) -> Node {
        defer { pending.removeSubrange(closed.start...) }
        guard closed.isMapping else { return .sequence(Node.Sequence(items: Array(pending[closed.start...]), mark: closed.mark)) }
        // libyaml gives every key a value (an empty one when none is written).
        let count = (pending.count - closed.start) / 2
        var pairs: [(key: Node, value: Node)] = []
        pairs.reserveCapacity(count)
        for index in 0..<count {
            let key = closed.start + 2 * index
            pairs.append((pending[key], pending[key + 1]))
        }
        return .mapping(Node.Mapping(pairs: pairs, mark: closed.mark))
    }

    private mutating func add(_ node: Node) {
        if open.isEmpty { roots.append(node) } else { pending.append(node) }
    }
}
