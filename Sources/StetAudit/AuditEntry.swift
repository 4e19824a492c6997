public import Foundation
public import StetCore

/// One audit entry: the payload of one line of `audit/log.jsonl` (docs/architecture.md, "Audit log", a
/// contract). Stet writes the fields in the order declared here.
public struct AuditEntry: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case intent, result, refusal, release, drift, alert, recovery
        /// A drill's start (no outcome) and its verdict (outcome, evidence in `reason`).
        case drill
        /// A change waiting for a maintenance window, or one that ran past its window.
        case window
    }

    public enum Outcome: String, Codable, Sendable {
        case ok, failed, interrupted
    }

    public struct Actor: Codable, Equatable, Sendable {
        /// Hex SHA-256 of the acting key's raw public key (the envelope's keyid).
        public var keyid: String
        /// The key's name in the trust policy.
        public var name: String
        public var host: String
        /// `cli` or `daemon`.
        public var via: String

        public init(keyid: String, name: String, host: String, via: String) {
            self.keyid = keyid
            self.name = name
            self.host = host
            self.via = via
        }
    }

    @available(*, deprecated, renamed: "ReleaseRef")
    public typealias Release = ReleaseRef

    public var seq: Int
    /// RFC 3339 UTC with milliseconds.
    public var time: String
    /// Hex leaf hash of entry `seq - 1`; empty for entry 0.
    public var prev: String
    public var kind: Kind
    public var actor: Actor
    /// The release in force when the entry was written (`ReleaseRef.none` before the first);
    /// a `release` entry carries the release it accepts.
    public var release: ReleaseRef
    public var plan: String?
    public var change: String?
    public var resource: String?
    public var action: String?
    public var cause: String?
    public var reason: String?
    public var outcome: Outcome?
    public var error: String?
    public var durationMs: Int?

    private enum CodingKeys: String, CodingKey {
        case seq, time, prev, kind, actor, release, plan, change, resource, action, cause, reason, outcome, error,
            durationMs
    }
}

/// What a caller says about an entry; the log fills in `seq`, `time`, `prev` and `actor`.
public struct AuditRecord: Sendable, Equatable {
    public var kind: AuditEntry.Kind
    public var release: ReleaseRef
    public var plan: String?
    public var change: String?
    public var resource: String?
    public var action: String?
    public var cause: String?
    public var reason: String?
    public var outcome: AuditEntry.Outcome?
    public var error: String?
    public var durationMs: Int?

    public init(
        kind: AuditEntry.Kind, release: ReleaseRef, plan: String? = nil, change: String? = nil,
        resource: String? = nil, action: String? = nil, cause: String? = nil, reason: String? = nil,
        outcome: AuditEntry.Outcome? = nil, error: String? = nil, durationMs: Int? = nil
    ) {
        self.kind = kind
        self.release = release
        self.plan = plan
        self.change = change
        self.resource = resource
        self.action = action
        self.cause = cause
        self.reason = reason
        self.outcome = outcome
        self.error = error
        self.durationMs = durationMs
    }

    /// The entry this record becomes at `seq`, written at `time` after `prev` by `actor`.
    public func entry(seq: Int, time: String, prev: String, actor: AuditEntry.Actor) -> AuditEntry {
        AuditEntry(
            seq: seq, time: time, prev: prev, kind: kind, actor: actor, release: release, plan: plan, change: change,
            resource: resource, action: action, cause: cause, reason: reason, outcome: outcome, error: error,
            durationMs: durationMs)
    }
}

extension AuditEntry {
    /// The DSSE payload type of audit lines.
    public static let payloadType = "application/vnd.stet.audit+json"

    /// The payload bytes: compact JSON, fields in the contract's order (`seq`, `time`, `prev`
    /// first), absent optionals left out. Written by hand: Foundation's encoder orders keys
    /// differently from run to run, and a log people read should not.
    public func payload() throws -> Data {
        var json = JSONWriter()
        json.field("seq", seq)
        json.field("time", time)
        json.field("prev", prev)
        json.field("kind", kind.rawValue)
        json.object("actor") { json in
            json.field("keyid", actor.keyid)
            json.field("name", actor.name)
            json.field("host", actor.host)
            json.field("via", actor.via)
        }
        json.object("release") { json in
            json.field("version", release.version)
            json.field("digest", release.digest)
            if let commit = release.commit { json.field("commit", commit) }
        }
        let optional: [(String, String?)] = [
            ("plan", plan), ("change", change), ("resource", resource), ("action", action), ("cause", cause),
            ("reason", reason), ("outcome", outcome?.rawValue), ("error", error),
        ]
        for case let (name, value?) in optional { json.field(name, value) }
        if let durationMs { json.field("durationMs", durationMs) }
        return json.finish()
    }

    /// Where the fields the chain needs (`seq`, `prev`, `actor.keyid`) are in a payload in the
    /// order Stet writes; nil for any other shape, which then takes the full decoder.
    static func chainFields(_ payload: UnsafeRawBufferPointer) -> (seq: Int, prev: Range<Int>, keyid: Range<Int>)? {
        var reader = ByteReader(payload)
        guard reader.expect(Self.seqField), let seq = reader.number(), reader.expect(Self.timeField),
            reader.rangeToQuote() != nil, reader.expect(Self.prevField), let prev = reader.rangeToQuote(),
            reader.expect(Self.kindField), let kind = reader.rangeToQuote(),
            Self.kindNames.contains(where: { $0.elementsEqual(payload[kind]) }),
            reader.expect(Self.keyidField), let keyid = reader.rangeToQuote()
        else { return nil }
        return (seq, prev, keyid)
    }

    private static let kindNames = Kind.allCases.map { Array($0.rawValue.utf8) }
    private static let seqField = Array(#"{"seq":"#.utf8)
    private static let timeField = Array(#","time":""#.utf8)
    private static let prevField = Array(#"","prev":""#.utf8)
    private static let kindField = Array(#"","kind":""#.utf8)
    private static let keyidField = Array(#"","actor":{"keyid":""#.utf8)

    /// Decodes a payload. Throws `DecodingError`.
    public static func decode(payload: Data) throws -> AuditEntry {
        try JSONDecoder().decode(AuditEntry.self, from: payload)
    }
}

/// A minimal writer of compact JSON objects with keys in the order written.
struct JSONWriter {
    private var bytes: [UInt8] = [0x7B]
    private var first = true

    private mutating func key(_ name: String) {
        if !first { bytes.append(0x2C) }
        first = false
        string(name)
        bytes.append(0x3A)
    }

    mutating func field(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    mutating func field(_ name: String, _ value: Int) {
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func object(_ name: String, _ body: (inout JSONWriter) -> Void) {
        key(name)
        var inner = JSONWriter()
        body(&inner)
        bytes.append(contentsOf: inner.finish())
    }

    private mutating func string(_ value: String) {
        bytes.append(0x22)
        for byte in value.utf8 {
            switch byte {
            case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])
            case 0x09: bytes.append(contentsOf: [0x5C, 0x74])
            case 0..<0x20: bytes.append(contentsOf: Array(String(format: "\\u%04x", byte).utf8))
            default: bytes.append(byte)
            }
        }
        bytes.append(0x22)
    }

    func finish() -> Data { Data(bytes + [0x7D]) }
}
