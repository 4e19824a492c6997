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
        let failure = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Failure? in
            var scanner = Scanner(bytes: raw.bindMemory(to: UInt8.self))
            do throws(Failure) {
                scanner.skipSpace()
                try scanner.value(depth: 0)
                scanner.skipSpace()
                guard scanner.position == scanner.bytes.count else { throw scanner.failure("unexpected text after the JSON value") }
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    /// A string as found: its raw bytes `start..<end`, or `decoded` when it had escapes (or, for
    /// a key that is not ASCII, its normal form C).
    private struct Key {
        let start: Int
        let end: Int
        let decoded: [UInt8]?

        func bytes(in buffer: UnsafeBufferPointer<UInt8>) -> [UInt8] { decoded ?? Array(buffer[start..<end]) }

        func equals(_ other: Key, in buffer: UnsafeBufferPointer<UInt8>) -> Bool {
            if decoded == nil, other.decoded == nil {
                return end - start == other.end - other.start && buffer[start..<end].elementsEqual(buffer[other.start..<other.end])
            }
            return bytes(in: buffer) == other.bytes(in: buffer)
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        func failure(_ message: String) -> Failure { Failure(offset: position, message: message) }

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(Failure) {
            guard current == byte else { throw failure("expected \(what)") }
            position += 1
        }

        mutating func value(depth: Int) throws(Failure) {
            guard depth < StrictJSON.maximumDepth else { throw failure("nested deeper than \(StrictJSON.maximumDepth) levels") }
            switch current {
            case UInt8(ascii: "{"): try object(depth: depth)
            case UInt8(ascii: "["): try array(depth: depth)
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case .some(let byte) where byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte): try number()
            default: throw failure("expected a JSON value")
            }
        }

        mutating func object(depth: Int) throws(Failure) {
            position += 1
            skipSpace()
            if current == UInt8(ascii: "}") {
                position += 1
                return
            }
            // Small objects (audit entries, plans) compare keys in place; large ones (a release
            // index's files) through a set, so neither allocates much nor costs n².
            var small: [Key] = []
            var large: Set<[UInt8]>?
            while true {
                skipSpace()
                let start = position
                guard current == UInt8(ascii: "\"") else { throw failure("expected a key in quotes") }
                let key = try string(isKey: true)
                let duplicate: Bool
                if large != nil {
                    duplicate = !large!.insert(key.bytes(in: bytes)).inserted
                } else if small.contains(where: { $0.equals(key, in: bytes) }) {
                    duplicate = true
                } else {
                    duplicate = false
                    small.append(key)
                    if small.count > 16 { large = Set(small.map { $0.bytes(in: bytes) }) }
                }
                guard !duplicate else {
                    throw Failure(
                        offset: start, message: "the key \"\(String(decoding: key.bytes(in: bytes), as: UTF8.self))\" appears twice in one object")
                }
                skipSpace()
                try expect(UInt8(ascii: ":"), "':'")
                skipSpace()
                try value(depth: depth + 1)
                skipSpace()
                if current == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "}"), "',' or '}'")
                return
            }
        }

        mutating func array(depth: Int) throws(Failure) {
            position += 1
            skipSpace()
            if current == UInt8(ascii: "]") {
                position += 1
                return
            }
            while true {
                skipSpace()
                try value(depth: depth + 1)
                skipSpace()
                if current == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "]"), "',' or ']'")
                return
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
                    let key = Key(start: start, end: position - 1, decoded: decoded)
                    if plainASCII { return key }
                    let raw = key.bytes(in: bytes)
                    guard let text = String(validating: raw, as: UTF8.self) else { throw failure("a string that is not UTF-8") }
                    if isKey, raw.contains(where: { $0 >= 0x80 }) {
                        return Key(start: key.start, end: key.end, decoded: Array(text.precomposedStringWithCanonicalMapping.utf8))
                    }
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
