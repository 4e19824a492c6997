public import Foundation
import StetCore
import StetCrypto
import StetState

/// The payload of `release.dsse.json`: which files, with which digests, make the release.
public struct ReleaseIndex: Codable, Equatable, Sendable {
    public static let type = "stet.release/v1"
    public static let payloadType = "application/vnd.stet.release+json"
    /// The envelope's file name inside the manifest directory.
    public static let envelopeName = "release.dsse.json"
    /// How far `created` may be ahead of this host's clock.
    public static let clockSkewAllowance: TimeInterval = 300
    /// More files than a release may list.
    public static let maximumFiles = 100_000

    public var type: String
    public var version: Int
    public var created: Date
    public var expires: Date
    /// Relative `/`-separated path → `sha256:<hex>`.
    public var files: [String: String]

    public init(version: Int, created: Date, expires: Date, files: [String: String]) {
        self.init(type: Self.type, version: version, created: created, expires: expires, files: files)
    }

    private init(type: String, version: Int, created: Date, expires: Date, files: [String: String]) {
        self.type = type
        self.version = version
        self.created = created
        self.expires = expires
        self.files = files
    }

    /// Canonical bytes: compact JSON with sorted keys, so one index has one digest.
    public func encoded() -> Data {
        let encoder = JSONCoding.encoder
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try! encoder.encode(self)
    }

    /// Parses payload bytes; the message says which field is wrong.
    public static func decode(_ payload: Data) throws(VerificationError) -> ReleaseIndex {
        let index: ReleaseIndex
        do {
            index = try fields(of: StrictJSON.parse(payload))
        } catch {
            throw VerificationError(.indexMalformed, "the release index is not valid: \(error)")
        }
        guard index.type == Self.type else {
            throw VerificationError(
                .indexMalformed, "the release index has type \"\(TextEscaping.excerpt(index.type, limit: 80))\", expected \"\(Self.type)\"")
        }
        guard index.version >= 1, index.version < Int.max else {
            throw VerificationError(.indexMalformed, "the release index has version \(index.version), expected a whole number ≥ 1")
        }
        guard index.files.count <= maximumFiles else {
            throw VerificationError(.indexMalformed, "the release index lists \(index.files.count) files; at most \(maximumFiles) are accepted")
        }
        for (path, digest) in index.files where !isDigest(digest) {
            throw VerificationError(
                .indexMalformed,
                "the release index lists \(TextEscaping.excerpt(path)) with digest \"\(TextEscaping.excerpt(digest, limit: 80))\", "
                    + "expected sha256:<64 lowercase hex digits>")
        }
        return index
    }

    /// The index's fields, from the payload's one JSON value, read as a `Decodable` index would
    /// read them (members it does not know are skipped), without a second scan of a payload that
    /// lists every file of the release.
    private static func fields(of value: StrictJSON.Value) throws(FieldError) -> ReleaseIndex {
        guard case .object(let members) = value else { throw FieldError("expected an object") }
        var found: [String: StrictJSON.Value] = [:]
        for (key, value) in members { found[key] = value }
        // StrictJSON refused keys equal in normal form C; this holds even if its Unicode tables
        // and the standard library's were to differ.
        guard found.count == members.count else { throw FieldError("two members with one name") }
        func member(_ name: String) throws(FieldError) -> StrictJSON.Value {
            guard let value = found[name] else { throw FieldError("missing field \(name)") }
            return value
        }
        func string(_ name: String) throws(FieldError) -> String {
            guard case .string(let text) = try member(name) else { throw FieldError("\(name): expected a string") }
            return text
        }
        func time(_ name: String) throws(FieldError) -> Date {
            let text = try string(name)
            guard let date = RFC3339.parse(text) else {
                throw FieldError("\(name): not an RFC 3339 time: \(TextEscaping.excerpt(text, limit: 80))")
            }
            return date
        }
        guard case .number(let number) = try member("version"), let version = wholeNumber(number) else {
            throw FieldError("version: expected a whole number")
        }
        guard case .object(let listed) = try member("files") else { throw FieldError("files: expected an object") }
        var files: [String: String] = Dictionary(minimumCapacity: listed.count)
        for (path, digest) in listed {
            guard case .string(let text) = digest else { throw FieldError("files.\(TextEscaping.excerpt(path)): expected a string") }
            files[path] = text
        }
        guard files.count == listed.count else { throw FieldError("files: two paths with one name") }
        return ReleaseIndex(type: try string("type"), version: version, created: try time("created"), expires: try time("expires"), files: files)
    }

    /// A JSON number's text as an `Int`, when it is a whole number that fits: `7`, and `7.0` or
    /// `7e0` as Foundation's decoder takes them too, up to 2^53 (beyond, where a `Double` no
    /// longer holds every whole number, only digits are read; the decoder rounded through
    /// `Decimal`, and Stet never writes such a version).
    public static func wholeNumber(_ text: String) -> Int? {
        if let value = Int(text) { return value }
        guard let value = Double(text), value.rounded() == value, abs(value) < 0x1p53 else { return nil }
        return Int(value)
    }

    struct FieldError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// True for `sha256:` and 64 lowercase hexadecimal digits, as Stet writes them and compares
    /// them to the files' (an uppercase digest would pass here and then fail every file as
    /// changed): checked byte by byte, as a release of 100,000 files has as many digests.
    public static func isDigest(_ text: String) -> Bool {
        let prefix = "sha256:".utf8
        let utf8 = text.utf8
        guard utf8.count == prefix.count + 2 * SHA256.byteCount, utf8.starts(with: prefix) else { return false }
        return utf8.dropFirst(prefix.count).allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): true
            default: false
            }
        }
    }
}

func describeDecoding(_ error: any Error) -> String {
    switch error as? DecodingError {
    case .keyNotFound(let key, _)?: return "missing field \(key.stringValue)"
    case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?, .dataCorrupted(let context)?:
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
    default: return "\(error)"
    }
}
