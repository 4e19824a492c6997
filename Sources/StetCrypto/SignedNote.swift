public import Foundation

/// A C2SP signed note (c2sp.org/signed-note) with Ed25519 signatures (type 0x01): a text that
/// ends in a newline, a blank line, then one line per signature, `— NAME base64(keyID ‖ sig)`.
/// Stet's audit checkpoints are signed notes, so any tool that reads the format can check them.
public struct SignedNote: Equatable, Sendable {
    public struct Signature: Equatable, Sendable {
        public var name: String
        /// The 4-byte key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4] for an Ed25519 note
        /// signature; a witness's cosignature uses type 0x04 instead (StetAudit's `Cosignature`).
        public var keyID: Data
        public var signature: Data

        /// A signature line made elsewhere (a cosignature's key id and bytes follow other rules).
        public init(name: String, keyID: Data, signature: Data) {
            self.name = name
            self.keyID = keyID
            self.signature = signature
        }
    }

    /// The signed text, final newline included.
    public var text: String
    public var signatures: [Signature]

    public init(text: String, signatures: [Signature] = []) {
        self.text = text
        self.signatures = signatures
    }

    /// True when `text` has the shape of a signed note (a blank line followed by a line that
    /// starts with `— `): worth checking, and an error when it does not verify. Anything else
    /// (a README beside the notes) is not a note at all.
    public static func looksSigned(_ text: String) -> Bool { text.contains("\n\n\u{2014} ") }

    /// The note as it is written: text, blank line, signature lines.
    public var rendered: String {
        text + "\n" + signatures.map { "— \($0.name) \(($0.keyID + $0.signature).base64EncodedString())\n" }.joined()
    }

    /// Adds `key`'s signature under `name`, replacing an earlier one by the same name and key.
    public mutating func sign(name: String, with key: PrivateKey) throws {
        let verifier = try NoteVerifier(name: name, publicKey: key.publicKey)
        let signature = Signature(name: name, keyID: verifier.keyID, signature: try key.signature(for: Data(text.utf8)))
        signatures.removeAll { $0.name == name && $0.keyID == verifier.keyID }
        signatures.append(signature)
    }

    /// Parses a note. Errors say which line and what was expected.
    public init(parsing note: String) throws {
        guard let split = note.range(of: "\n\n", options: .backwards) else {
            throw CryptoError.malformed("signed note: no blank line before the signatures")
        }
        let text = String(note[..<split.lowerBound]) + "\n"
        let block = note[split.upperBound...]
        guard block.hasSuffix("\n") else { throw CryptoError.malformed("signed note: the last signature line has no final newline") }
        var signatures: [Signature] = []
        for (index, line) in block.dropLast().split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let what = "signed note: signature line \(index + 1)"
            guard line.hasPrefix("— ") else { throw CryptoError.malformed("\(what): expected `— NAME SIGNATURE`") }
            let fields = line.dropFirst(2).split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 2, NoteVerifier.isValidName(String(fields[0])) else {
                throw CryptoError.malformed("\(what): expected a key name without spaces or '+', one space, base64")
            }
            guard let blob = Data(base64Encoded: String(fields[1])), blob.count > 4 else {
                throw CryptoError.malformed("\(what): the signature is not base64 of a key id and a signature")
            }
            signatures.append(Signature(name: String(fields[0]), keyID: blob.prefix(4), signature: Data(blob.dropFirst(4))))
        }
        guard !signatures.isEmpty else { throw CryptoError.malformed("signed note: no signatures") }
        self.init(text: text, signatures: signatures)
    }

    /// The verifiers among `candidates` with a valid signature on this note, each once. A
    /// signature whose name and key id match no candidate is skipped, as the format asks.
    public func validSigners(among candidates: [NoteVerifier]) -> [NoteVerifier] {
        let message = Data(text.utf8)
        var found: [NoteVerifier] = []
        for signature in signatures {
            guard let verifier = candidates.first(where: { $0.name == signature.name && $0.keyID == signature.keyID }),
                !found.contains(where: { $0.name == verifier.name && $0.keyID == verifier.keyID }),
                verifier.publicKey.isValidSignature(signature.signature, for: message)
            else { continue }
            found.append(verifier)
        }
        return found
    }
}

/// A named Ed25519 note verifier: the key plus the name it signs under.
public struct NoteVerifier: Sendable {
    public static let ed25519: UInt8 = 0x01

    public let name: String
    public let publicKey: PublicKey
    public let keyID: Data

    public init(name: String, publicKey: PublicKey) throws {
        guard Self.isValidName(name) else {
            throw CryptoError.malformed("note key name \"\(name)\": expected non-empty text without spaces or '+'")
        }
        self.name = name
        self.publicKey = publicKey
        var material = Data(name.utf8)
        material.append(0x0A)
        material.append(Self.ed25519)
        material.append(publicKey.rawRepresentation)
        keyID = SHA256.hash(material).prefix(4)
    }

    /// `NAME+hex(keyID)+base64(0x01 ‖ public key)`, the verifier key other tools read.
    public var verifierKey: String {
        "\(name)+\(keyID.hexString)+\((Data([Self.ed25519]) + publicKey.rawRepresentation).base64EncodedString())"
    }

    /// Parses a verifier key, checking that its key id matches its name and key.
    public init(verifierKey: String) throws {
        let parts = verifierKey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let blob = Data(base64Encoded: String(parts[2])), blob.count == 33,
            blob.first == Self.ed25519
        else {
            throw CryptoError.malformed("verifier key: expected NAME+KEYID+base64(0x01 ‖ 32-byte Ed25519 key)")
        }
        try self.init(name: String(parts[0]), publicKey: try PublicKey(rawRepresentation: Data(blob.dropFirst())))
        guard keyID.hexString == parts[1].lowercased() else {
            throw CryptoError.malformed("verifier key: key id \(parts[1]) does not match the name and key (\(keyID.hexString))")
        }
    }

    /// Names are non-empty and hold no whitespace and no '+'.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0 == "+" || $0.properties.isWhitespace }
    }
}

extension PrivateKey {
    /// `PRIVATE+KEY+NAME+hex(keyID)+base64(0x01 ‖ seed)`, the signer key format of signed notes.
    public static func noteSigner(_ signerKey: String) throws -> (name: String, key: PrivateKey) {
        let parts = signerKey.split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY", let blob = Data(base64Encoded: String(parts[4])),
            blob.count == 33, blob.first == NoteVerifier.ed25519
        else {
            throw CryptoError.malformed("signer key: expected PRIVATE+KEY+NAME+KEYID+base64(0x01 ‖ 32-byte seed)")
        }
        let key = try PrivateKey(seed: Data(blob.dropFirst()))
        let verifier = try NoteVerifier(name: String(parts[2]), publicKey: key.publicKey)
        guard verifier.keyID.hexString == parts[3].lowercased() else {
            throw CryptoError.malformed("signer key: key id \(parts[3]) does not match the name and key")
        }
        return (verifier.name, key)
    }
}
