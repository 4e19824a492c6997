public import Foundation
public import StetCrypto

/// A C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): origin, tree size and root hash of the
/// audit log, as the text of a signed note signed under the origin's name.
public struct Checkpoint: Equatable, Sendable {
    public let origin: String
    public let size: Int
    public let root: Data

    public init(origin: String, size: Int, root: Data) {
        self.origin = origin
        self.size = size
        self.root = root
    }

    /// `stet/<hostname>`.
    public static var defaultOrigin: String { "stet/" + hostName }

    /// This machine's host name (`localhost` when it has none).
    public static var hostName: String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return host.isEmpty ? "localhost" : host
    }

    /// The note text: three lines, each ending in a newline.
    public var text: String { "\(origin)\n\(size)\n\(root.base64EncodedString())\n" }

    /// The signed note, signed by `key` under the origin as its name.
    public func signed(with key: PrivateKey) throws -> SignedNote {
        var note = SignedNote(text: text)
        try note.sign(name: origin, with: key)
        return note
    }

    /// Reads a checkpoint note's text. Extension lines after the root are allowed and ignored.
    public init(text: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 4, lines.last == "" else {
            throw AuditError(.invalid, "checkpoint: expected origin, tree size and root hash lines")
        }
        guard NoteVerifier.isValidName(String(lines[0])) else {
            throw AuditError(.invalid, "checkpoint: the origin line \"\(lines[0])\" is empty or holds spaces or '+'")
        }
        guard let size = Int(lines[1]), size >= 0, String(size) == lines[1] else {
            throw AuditError(.invalid, "checkpoint: the tree size \"\(lines[1])\" is not a decimal number")
        }
        guard let root = Data(base64Encoded: String(lines[2])), root.count == Merkle.hashSize else {
            throw AuditError(.invalid, "checkpoint: the root hash is not base64 of 32 bytes")
        }
        self.init(origin: String(lines[0]), size: size, root: root)
    }

    /// Parses a signed checkpoint and checks that a trusted operator key signed it under its
    /// origin. Returns the checkpoint and the name of the key that signed.
    public static func verify(note: String, trust: AuditTrust, source: String) throws -> (Checkpoint, signer: String) {
        let signed: SignedNote
        let checkpoint: Checkpoint
        do {
            signed = try SignedNote(parsing: note)
            checkpoint = try Checkpoint(text: signed.text)
        } catch let error as AuditError {
            throw AuditError(.invalid, "\(source): \(error.message)")
        } catch {
            throw AuditError(.invalid, "\(source): \(error)")
        }
        let names = Set(signed.signatures.map(\.name))
        let verifiers = names.flatMap { trust.noteVerifiers(name: $0) }
        guard let signer = signed.validSigners(among: verifiers).first else {
            throw AuditError(.invalid, "\(source): no signature by an operator key of the trust policy")
        }
        let keyName = trust.keys[signer.publicKey.keyID]?.name ?? signer.name
        return (checkpoint, keyName)
    }
}
