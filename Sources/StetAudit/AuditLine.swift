public import Foundation
public import StetCrypto

/// The keys whose signatures an audit log accepts: the `operator` keys of the trust policy in
/// force (and of the policies pinned before it, whose entries stay valid), by key id.
public struct AuditTrust: Sendable {
    public struct Key: Sendable {
        public let name: String
        public let publicKey: PublicKey
    }

    public let keys: [String: Key]

    public init(_ keys: [(name: String, publicKey: PublicKey)]) {
        var byID: [String: Key] = [:]
        for key in keys where byID[key.publicKey.keyID] == nil {
            byID[key.publicKey.keyID] = Key(name: key.name, publicKey: key.publicKey)
        }
        self.keys = byID
    }

    public func key(id: String) -> Key? { keys[id] }

    /// The keys as signed-note verifiers under `name` (a checkpoint's origin).
    public func noteVerifiers(name: String) -> [NoteVerifier] {
        keys.values.compactMap { try? NoteVerifier(name: name, publicKey: $0.publicKey) }
    }
}

/// A line of `log.jsonl` that failed a check: where, which check, and what was found.
public struct AuditFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Check: String, Sendable {
        /// Not a one-line DSSE envelope in Stet's form.
        case envelope
        /// The signature, or the key that made it.
        case signature
        /// The payload is not an audit entry.
        case payload
        /// `seq` is not the line's index.
        case sequence
        /// `prev` is not the previous entry's leaf hash.
        case chain
        /// The last line lacks its final newline: a write cut short by a crash.
        case torn
        /// The log is shorter than a point it already reached, or than its signed head or a
        /// checkpoint says.
        case truncated
        /// Every line verifies, but the log's history is not the one its signed head or a
        /// checkpoint recorded.
        case rewritten
    }

    /// 1-based line number in `log.jsonl`.
    public let line: Int
    public let check: Check
    public let message: String

    public init(line: Int, check: Check, message: String) {
        self.line = line
        self.check = check
        self.message = message
    }

    public var description: String { "line \(line): \(check.rawValue): \(message)" }
}

/// Encodes and checks single log lines. A line is exactly what `Envelope.json()` writes for one
/// signature, plus a newline; anything else, down to a base64 padding bit, is not Stet's line,
/// so no byte of a line can change without a check failing.
public enum AuditLine {
    private static let head = Array(#"{"payloadType":"application/vnd.stet.audit+json","payload":""#.utf8)
    private static let middle = Array(#"","signatures":[{"keyid":""#.utf8)
    private static let sigField = Array(#"","sig":""#.utf8)
    private static let tail = Array(#""}]}"#.utf8)

    /// The signed line for `entry`, newline included.
    public static func encode(_ entry: AuditEntry, key: PrivateKey) throws -> Data {
        let payload = try entry.payload()
        let signature = try key.signature(
            for: Envelope.preAuthenticationEncoding(payloadType: AuditEntry.payloadType, payload: payload))
        return line(payload: payload, keyID: key.publicKey.keyID, signature: signature)
    }

    /// The line for a payload and its signature, newline included: byte for byte what
    /// `Envelope.json()` writes, without going through a JSON serializer.
    public static func line(payload: Data, keyID: String, signature: Data) -> Data {
        var line = Data(capacity: head.count + payload.count * 4 / 3 + 200)
        line.append(contentsOf: head)
        line.append(payload.base64EncodedData())
        line.append(contentsOf: middle)
        line.append(contentsOf: keyID.utf8)
        line.append(contentsOf: sigField)
        line.append(signature.base64EncodedData())
        line.append(contentsOf: tail)
        line.append(0x0A)
        return line
    }

    /// Why a line is not one Stet wrote.
    public struct LineError: Error, Sendable {
        public let message: String
        init(_ message: String) { self.message = message }
    }

    /// A line split into its parts, signature not yet checked.
    public struct Parts: Sendable {
        public let payload: Data
        public let keyID: String
        public let signature: Data

        public var signedBytes: Data {
            Envelope.preAuthenticationEncoding(payloadType: AuditEntry.payloadType, payload: payload)
        }
    }

    /// Splits a line (without its newline) into payload, key id and signature, or says why it
    /// is not a line Stet wrote.
    public static func parse(_ line: UnsafeRawBufferPointer) -> Result<Parts, LineError> {
        var reader = ByteReader(line)
        guard reader.expect(head) else { return .failure(LineError(describe(line))) }
        guard let payloadText = reader.rangeToQuote() else { return .failure(LineError("the payload is not closed")) }
        guard reader.expect(middle) else { return .failure(LineError("expected exactly one signature with keyid and sig")) }
        guard let keyText = reader.rangeToQuote() else { return .failure(LineError("the keyid is not closed")) }
        guard reader.expect(sigField) else { return .failure(LineError("expected exactly one signature with keyid and sig")) }
        guard let sigText = reader.rangeToQuote() else { return .failure(LineError("the sig is not closed")) }
        guard reader.expect(tail), reader.atEnd else {
            return .failure(LineError("unexpected text after the signature (one signature per entry)"))
        }
        guard let payload = Data(canonicalBase64: UnsafeRawBufferPointer(rebasing: line[payloadText])) else {
            return .failure(LineError("the payload is not canonical base64"))
        }
        guard let signature = Data(canonicalBase64: UnsafeRawBufferPointer(rebasing: line[sigText])), signature.count == 64 else {
            return .failure(LineError("the sig is not canonical base64 of a 64-byte Ed25519 signature"))
        }
        let key = line[keyText]
        guard key.count == 64, key.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            return .failure(LineError("the keyid is not 64 lowercase hex digits"))
        }
        return .success(Parts(payload: payload, keyID: String(decoding: key, as: UTF8.self), signature: signature))
    }

    /// Why a line that does not start as Stet's does is wrong, in the words of the envelope parser.
    private static func describe(_ line: UnsafeRawBufferPointer) -> String {
        let data = Data(line)
        do {
            let envelope = try Envelope(json: data)
            if envelope.payloadType != AuditEntry.payloadType {
                return "payloadType is \"\(envelope.payloadType)\", expected \"\(AuditEntry.payloadType)\""
            }
            return "not in the one-line form Stet writes (fields reordered or spaced)"
        } catch {
            return "not a DSSE envelope: \(error)"
        }
    }

}

/// A cursor over the bytes of one line (valid only while the buffer is).
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(_ buffer: UnsafeRawBufferPointer) { bytes = buffer }

    var atEnd: Bool { index == bytes.count }

    mutating func expect(_ literal: [UInt8]) -> Bool {
        guard bytes.count - index >= literal.count else { return false }
        for (offset, byte) in literal.enumerated() where bytes[index + offset] != byte { return false }
        index += literal.count
        return true
    }

    /// The range up to the next `"` (left unread); nil when none or a backslash comes first.
    mutating func rangeToQuote() -> Range<Int>? {
        let start = index
        while index < bytes.count {
            switch bytes[index] {
            case 0x22: return start..<index
            case 0x5C: return nil
            default: index += 1
            }
        }
        return nil
    }

    /// A non-negative decimal number without leading zeros.
    mutating func number() -> Int? {
        let start = index
        var value = 0
        while index < bytes.count, (0x30...0x39).contains(bytes[index]) {
            let (product, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowSum) = product.addingReportingOverflow(Int(bytes[index] - 0x30))
            guard !overflow, !overflowSum else { return nil }
            value = sum
            index += 1
        }
        guard index > start, index - start == 1 || bytes[start] != 0x30 else { return nil }
        return value
    }
}
