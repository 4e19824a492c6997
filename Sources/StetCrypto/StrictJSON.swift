public import Foundation

/// Checks that signed JSON says one thing only: well-formed (RFC 8259), no object with the
/// same key twice, nesting at most `maximumDepth`. Foundation's decoders keep one of two
/// duplicated keys silently, so a payload `{"version": 1, "version": 9}` could mean one thing
/// to Stet and another to a reviewer's tool; signed payloads are refused instead.
///
/// "The same key" is what Swift's `String` calls equal: keys are compared after escapes are
/// decoded and in Unicode normal form C. Swift compares strings by canonical equivalence, so
/// `"K.yaml"` and `"\u212A.yaml"` (KELVIN SIGN) are one key of a `[String: String]` to Stet's
/// decoder, which keeps one of the two, and two keys to any other reader.
public enum StrictJSON {
    public struct Failure: Error, CustomStringConvertible, Sendable, Equatable {
        /// Byte offset of the problem.
        public let offset: Int
        public let message: String
        public var description: String { "\(message) at byte \(offset)" }
    }

    public static let maximumDepth = 64

    /// Throws `Failure` unless `data` is one JSON value with unique keys in every object.
    public static func checkUniqueKeys(_ data: Data) throws(Failure) {
        _ = try scan(data, keep: false)
    }

    /// The one JSON value of `data`, checked as `checkUniqueKeys` checks it. For a large signed
    /// payload (a release index lists every file) that would otherwise be scanned twice, once
    /// here and once by a decoder.
    public static func parse(_ data: Data) throws(Failure) -> Value {
        try scan(data, keep: true) ?? .null
    }

    /// A JSON value. An object keeps its members in the order written; a number keeps its text.
    /// Not `indirect`: lists and objects hold their values in arrays already, and a box per value
    /// would cost an unsigned payload of `[0,0,…]` some 50 bytes of memory for every 2 it has.
    public enum Value: Sendable {
        case null
        case bool(Bool)
        /// As written, in RFC 8259's grammar.
        case number(String)
        case string(String)
        case array([Value])
        case object([(key: String, value: Value)])
    }

    private static func scan(_ data: Data, keep: Bool) throws(Failure) -> Value? {
        let outcome = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Result<Value?, Failure> in
            var scanner = Scanner(bytes: raw.bindMemory(to: UInt8.self), keep: keep)
            do throws(Failure) {
                scanner.skipSpace()
                let value = try scanner.value(depth: 0)
                scanner.skipSpace()
                guard scanner.position == scanner.bytes.count else { throw scanner.failure("unexpected text after the JSON value") }
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    /// A string as found: its raw bytes `start..<end`; `unescaped` when it had escapes; and,
    /// for a key that is not ASCII, `normal`, its normal form C, which is what keys compare by.
    private struct Key {
        let start: Int
        let end: Int
        let unescaped: [UInt8]?
        var normal: [UInt8]? = nil

        func bytes(in buffer: UnsafeBufferPointer<UInt8>) -> [UInt8] { normal ?? unescaped ?? Array(buffer[start..<end]) }

        /// The string's text as written, escapes decoded (checked to be UTF-8 already).
        func text(in buffer: UnsafeBufferPointer<UInt8>) -> String {
            if let unescaped { return String(decoding: unescaped, as: UTF8.self) }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<end]), as: UTF8.self)
        }

        /// What a large object's set holds for this key, given its `text`: the text itself, or
        /// its normal form C when that differs.
        func comparable(_ text: String) -> String {
            guard let normal else { return text }
            return String(decoding: normal, as: UTF8.self)
        }

        func equals(_ other: Key, in buffer: UnsafeBufferPointer<UInt8>) -> Bool {
            if normal == nil, unescaped == nil, other.normal == nil, other.unescaped == nil {
                return end - start == other.end - other.start && buffer[start..<end].elementsEqual(buffer[other.start..<other.end])
            }
            return bytes(in: buffer) == other.bytes(in: buffer)
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        /// Whether to build the values, or only to check them (nil for every value).
        let keep: Bool
        var position = 0

        init(bytes: UnsafeBufferPointer<UInt8>, keep: Bool) {
            self.bytes = bytes
            self.keep = keep
        }

        func failure(_ message: String) -> Failure { Failure(offset: position, message: message) }

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(Failure) {
            guard current == byte else { throw failure("expected \(what)") }
            position += 1
        }

        mutating func value(depth: Int) throws(Failure) -> Value? {
            guard depth < StrictJSON.maximumDepth else { throw failure("nested deeper than \(StrictJSON.maximumDepth) levels") }
            switch current {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""):
                let string = try string()
                return keep ? .string(string.text(in: bytes)) : nil
            case UInt8(ascii: "t"):
                try literal("true")
                return keep ? .bool(true) : nil
            case UInt8(ascii: "f"):
                try literal("false")
                return keep ? .bool(false) : nil
            case UInt8(ascii: "n"):
                try literal("null")
                return keep ? .null : nil
            case .some(let byte) where byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte):
                let start = position
                try number()
                return keep ? .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)) : nil
            default: throw failure("expected a JSON value")
            }
        }

        mutating func object(depth: Int) throws(Failure) -> Value? {
            position += 1
            skipSpace()
            if current == UInt8(ascii: "}") {
                position += 1
                return keep ? .object([]) : nil
            }
            var members: [(key: String, value: Value)] = []
            // Small objects (audit entries, plans) compare keys in place; large ones (a release
            // index's files) through a set of their texts (each the one string its member keeps:
            // a key in normal form C only when it is not ASCII), so neither allocates much nor
            // costs n². Two texts with the same bytes are equal strings, so the set finds every
            // duplicate the comparison in place finds.
            var small: [Key] = []
            var large: Set<String>?
            while true {
                skipSpace()
                let start = position
                guard current == UInt8(ascii: "\"") else { throw failure("expected a key in quotes") }
                let key = try string(isKey: true)
                // Made once: the member keeps it, and a large object's set compares by it.
                let text = keep || large != nil || small.count >= 16 ? key.text(in: bytes) : ""
                let duplicate: Bool
                if large != nil {
                    duplicate = !large!.insert(key.comparable(text)).inserted
                } else if small.contains(where: { $0.equals(key, in: bytes) }) {
                    duplicate = true
                } else {
                    duplicate = false
                    small.append(key)
                    if small.count > 16 {
                        large = Set(minimumCapacity: 64)
                        for earlier in small.dropLast() { large!.insert(earlier.comparable(earlier.text(in: bytes))) }
                        large!.insert(key.comparable(text))
                        small = []
                    }
                }
                guard !duplicate else {
                    throw Failure(
                        offset: start, message: "the key \(Self.quoted(key.text(in: bytes))) appears twice in one object")
                }
                skipSpace()
                try expect(UInt8(ascii: ":"), "':'")
                skipSpace()
                let member = try value(depth: depth + 1)
                if let member { members.append((text, member)) }
                skipSpace()
                if current == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "}"), "',' or '}'")
                return keep ? .object(members) : nil
            }
        }

        mutating func array(depth: Int) throws(Failure) -> Value? {
            position += 1
            skipSpace()
            if current == UInt8(ascii: "]") {
                position += 1
                return keep ? .array([]) : nil
            }
            var items: [Value] = []
            while true {
                skipSpace()
                if let item = try value(depth: depth + 1) { items.append(item) }
                skipSpace()
                if current == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "]"), "',' or ']'")
                return keep ? .array(items) : nil
            }
        }

        /// A string: where its raw bytes are, and its decoded UTF-8 bytes when it has escapes,
        /// so that `"a"` and `"\u0061"` are the same key. A key that is not ASCII is compared in
        /// normal form C, so that canonically equivalent spellings are the same key too.
        mutating func string(isKey: Bool = false) throws(Failure) -> Key {
            position += 1
            let start = position
            var decoded: [UInt8]?
            // ASCII without escapes, by far the most common string, needs no copy to check.
            var plainASCII = true
            while let byte = current {
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    var key = Key(start: start, end: position - 1, unescaped: decoded)
                    if plainASCII { return key }
                    let raw = key.bytes(in: bytes)
                    guard let text = String(validating: raw, as: UTF8.self) else { throw failure("a string that is not UTF-8") }
                    if isKey, raw.contains(where: { $0 >= 0x80 }) { key.normal = Array(text.precomposedStringWithCanonicalMapping.utf8) }
                    return key
                case UInt8(ascii: "\\"):
                    plainASCII = false
                    if decoded == nil { decoded = Array(bytes[start..<(position - 1)]) }
                    guard let escape = current else { break }
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded!.append(escape)
                    case UInt8(ascii: "b"): decoded!.append(0x08)
                    case UInt8(ascii: "f"): decoded!.append(0x0C)
                    case UInt8(ascii: "n"): decoded!.append(0x0A)
                    case UInt8(ascii: "r"): decoded!.append(0x0D)
                    case UInt8(ascii: "t"): decoded!.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard current == UInt8(ascii: "\\") else { throw failure("a lone surrogate in a string") }
                            position += 1
                            try expect(UInt8(ascii: "u"), "a low surrogate")
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw failure("a lone surrogate in a string") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            throw failure("a lone surrogate in a string")
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw failure("an invalid \\u escape") }
                        decoded!.append(contentsOf: Array(String(Character(unicode)).utf8))
                    default: throw failure("an invalid escape in a string")
                    }
                case 0x00...0x1F:
                    throw failure("a control character in a string")
                default:
                    if byte >= 0x80 { plainASCII = false }
                    decoded?.append(byte)
                }
            }
            throw failure("a string without its closing quote")
        }

        /// `text` in quotes for a message: at most 80 characters, control characters escaped
        /// (a key can be megabytes long, and messages are recorded).
        static func quoted(_ text: String) -> String {
            let shown = text.unicodeScalars.prefix(80).map { $0.value < 0x20 || $0.value == 0x7F ? $0.escaped(asASCII: true) : String($0) }
            return "\"" + shown.joined() + "\"" + (text.unicodeScalars.count > 80 ? "… (\(text.utf8.count) bytes)" : "")
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let byte = current else { throw failure("expected four hex digits") }
                let digit: UInt32
                switch byte {
                case 0x30...0x39: digit = UInt32(byte - 0x30)
                case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
                default: throw failure("expected four hex digits")
                }
                value = value * 16 + digit
                position += 1
            }
            return value
        }

        mutating func literal(_ word: StaticString) throws(Failure) {
            let text = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            for byte in text {
                guard current == byte else { throw failure("expected \(word)") }
                position += 1
            }
        }

        mutating func number() throws(Failure) {
            if current == UInt8(ascii: "-") { position += 1 }
            guard let first = current, (0x30...0x39).contains(first) else { throw failure("expected a digit") }
            position += 1
            if first != 0x30 { digits() }
            if current == UInt8(ascii: ".") {
                position += 1
                guard digits() > 0 else { throw failure("expected a digit after '.'") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                position += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw failure("expected a digit in the exponent") }
            }
        }

        @discardableResult
        mutating func digits() -> Int {
            let start = position
            while let byte = current, (0x30...0x39).contains(byte) { position += 1 }
            return position - start
        }
    }
}
