public import Foundation
public import StetCrypto

/// A witness's Ed25519 cosignature of a checkpoint, in the C2SP tlog-cosignature v1 format
/// (c2sp.org/tlog-cosignature, signature type 0x04 of c2sp.org/signed-note): a note signature
/// line `— NAME base64(keyID ‖ timestamp ‖ signature)` under the witness's name, stating that as
/// of `timestamp` this checkpoint is the largest consistent tree the witness has seen of the log.
///
/// Every check is bounded and returns nil on bad input (a line of the wrong length, bad base64,
/// the key id of another key, a timestamp past 2^63 - 1): nothing here traps on what a peer sent.
public enum Cosignature {
    /// c2sp.org/signed-note, "Signature types": `0x04` — timestamped Ed25519 witness cosignatures.
    public static let signatureType: UInt8 = 0x04
    /// tlog-cosignature, "Format": key ID (4 bytes) ‖ `timestamped_signature` (u64 timestamp,
    /// big-endian, then the 64-byte Ed25519 signature).
    public static let blobLength = 4 + 8 + 64
    /// The base64 text of a blob: 76 bytes make 104 characters, padding included.
    static let base64Length = (blobLength + 2) / 3 * 4
    /// The longest witness name a line may carry (Stet's node names are far shorter).
    public static let maximumNameBytes = 256
    /// The longest checkpoint note, signature lines included, that Stet reads or writes. A
    /// checkpoint is three short lines, and 16 KiB holds over a hundred signature lines
    /// (c2sp.org/signed-note asks verifiers to bound a note and to accept at least 16 signatures).
    public static let maximumNoteBytes = 16 << 10

    /// tlog-cosignature, "Format": SHA-256(name ‖ "\n" ‖ 0x04 ‖ 32-byte Ed25519 public key)[:4].
    /// Type 0x04 keeps it apart from the same key's plain note signatures (type 0x01).
    public static func keyID(name: String, publicKey: PublicKey) -> Data {
        var material = Data(name.utf8)
        material.append(0x0A)
        material.append(signatureType)
        material.append(publicKey.rawRepresentation)
        return SHA256.hash(material).prefix(4)
    }

    /// tlog-cosignature, "Ed25519 signed message": the header line `cosignature/v1`, the line
    /// `time <timestamp>` (ASCII decimal, no leading zeroes), then the whole note text of the
    /// checkpoint with its final newline and without any signature line.
    public static func message(text: String, timestamp: UInt64) -> Data {
        var message = Data("cosignature/v1\ntime \(timestamp)\n".utf8)
        message.append(Data(text.utf8))
        return message
    }

    /// `date` as the spec's POSIX timestamp: whole seconds since 1970, at most 2^63 - 1
    /// (tlog-cosignature, "Format"). Nil before 1970, past that bound, or not a number.
    public static func timestamp(_ date: Date) -> UInt64? {
        guard let seconds = UInt64(exactly: date.timeIntervalSince1970.rounded(.down)), seconds <= UInt64(Int64.max) else {
            return nil
        }
        return seconds
    }

    /// `key`'s cosignature of the note text `text` (a checkpoint, final newline included) under
    /// the witness name `name`, made at `time`.
    public static func sign(text: String, name: String, key: PrivateKey, time: Date) throws -> SignedNote.Signature {
        guard NoteVerifier.isValidName(name), name.utf8.count <= maximumNameBytes else {
            throw AuditError(.invalid, "witness name \"\(name)\": expected at most \(maximumNameBytes) bytes without spaces or '+'")
        }
        guard text.hasSuffix("\n") else { throw AuditError(.invalid, "a cosigned note text ends in a newline") }
        guard let timestamp = Self.timestamp(time) else {
            throw AuditError(.invalid, "the time \(time) is not a POSIX timestamp between 1970 and 2^63 - 1 seconds")
        }
        var blob = withUnsafeBytes(of: timestamp.bigEndian) { Data($0) }
        blob.append(try key.signature(for: Self.message(text: text, timestamp: timestamp)))
        return SignedNote.Signature(name: name, keyID: Self.keyID(name: name, publicKey: key.publicKey), signature: blob)
    }

    /// The timestamp of `signature` when it is `publicKey`'s cosignature of `text` under
    /// `name`; nil for anything else (another name or key id, a blob of the wrong length, a
    /// timestamp past 2^63 - 1, a signature that does not verify).
    public static func verify(_ signature: SignedNote.Signature, text: String, name: String, publicKey: PublicKey) -> UInt64? {
        let blob = Array(signature.signature)
        guard signature.name == name, Array(signature.keyID) == Array(Self.keyID(name: name, publicKey: publicKey)),
            blob.count == blobLength - 4
        else { return nil }
        let timestamp = blob.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard timestamp <= UInt64(Int64.max),
            publicKey.isValidSignature(blob.suffix(64), for: Self.message(text: text, timestamp: timestamp))
        else { return nil }
        return timestamp
    }

    /// The timestamp of the note signature line `line` (`— NAME base64`, with or without its
    /// newline) when it is `publicKey`'s cosignature of `text` under `name`; nil otherwise,
    /// including for a line of the wrong shape or length and for base64 that does not decode.
    public static func verify(line: String, text: String, name: String, publicKey: PublicKey) -> UInt64? {
        guard let signature = parse(line: line) else { return nil }
        return verify(signature, text: text, name: name, publicKey: publicKey)
    }

    /// A cosignature line's name, key id and `timestamped_signature`; nil unless it has the
    /// shape and length of one.
    package static func parse(line: String) -> SignedNote.Signature? {
        var text = Substring(line)
        if text.hasSuffix("\n") { text = text.dropLast() }
        guard text.utf8.count <= "— ".utf8.count + maximumNameBytes + 1 + base64Length, text.hasPrefix("— ") else {
            return nil
        }
        let fields = text.dropFirst(2).split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 2, fields[1].utf8.count == base64Length, NoteVerifier.isValidName(String(fields[0])),
            let blob = Data(base64Encoded: String(fields[1])), blob.count == blobLength
        else { return nil }
        return SignedNote.Signature(name: String(fields[0]), keyID: Data(blob.prefix(4)), signature: Data(blob.dropFirst(4)))
    }

    /// The names among `witnesses` (name → the key it cosigns with) whose cosignature of the
    /// note's text verifies, sorted. A note that does not parse or is longer than
    /// `maximumNoteBytes` has none. The log's own signature (type 0x01) has another key id and
    /// never counts; whether a node's cosignature of its own log should count is the caller's
    /// to decide (it should not).
    public static func witnesses(of note: String, among witnesses: [String: PublicKey]) -> [String] {
        guard note.utf8.count <= maximumNoteBytes, let parsed = try? SignedNote(parsing: note) else { return [] }
        var found = Set<String>()
        for signature in parsed.signatures where !found.contains(signature.name) {
            guard let key = witnesses[signature.name], verify(signature, text: parsed.text, name: signature.name, publicKey: key) != nil
            else { continue }
            found.insert(signature.name)
        }
        return found.sorted()
    }
}

extension SignedNote {
    /// Adds `key`'s cosignature under `name` made at `time`, replacing an earlier cosignature by
    /// the same name and key.
    public mutating func cosign(name: String, with key: PrivateKey, time: Date) throws {
        let signature = try Cosignature.sign(text: text, name: name, key: key, time: time)
        signatures.removeAll { $0.name == name && $0.keyID == signature.keyID }
        signatures.append(signature)
    }
}
