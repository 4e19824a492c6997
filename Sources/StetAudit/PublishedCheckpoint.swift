public import Foundation
public import StetCrypto
import StetState

/// What a node publishes for its witnesses (`checkpoints/NAME` in a fleet): its latest
/// checkpoint, and the RFC 6962 consistency proof to it from each older size its witnesses last
/// cosigned. The note is signed by the node's key under the checkpoint's origin; the proofs are
/// not signed and need not be: each one either leads from a checkpoint the witness already holds
/// to this one, or fails.
///
/// Decoding is bounded: at most `maximumProofs` proofs, each at most `maximumProofHashes`
/// hashes of 32 bytes, a note of at most `Cosignature.maximumNoteBytes` (16 KiB), sizes that are
/// canonical decimals.
public struct PublishedCheckpoint: Codable, Equatable, Sendable {
    public static let maximumProofs = 64
    /// A consistency proof holds at most one hash per level of the tree: 64 covers any size.
    public static let maximumProofHashes = 64
    /// The longest JSON text `decode(json:)` reads: the note with every byte escaped and every
    /// proof full, with room to spare.
    public static let maximumJSONBytes = 512 << 10

    /// The checkpoint as a signed note (text, blank line, signature lines).
    public var note: String
    /// Older tree size (decimal) → base64 hashes of the consistency proof from that size to the
    /// note's size.
    public var proofs: [String: [String]]

    public init(note: String, proofs: [String: [String]] = [:]) {
        self.note = note
        self.proofs = proofs
    }

    /// The consistency proof from `size`, decoded; nil when there is none or it is not a list
    /// of at most `maximumProofHashes` base64 hashes of 32 bytes.
    public func proof(from size: Int) -> [Data]? {
        guard let hashes = proofs[String(size)] else { return nil }
        return Self.decodeProof(hashes)
    }

    static func decodeProof(_ hashes: [String]) -> [Data]? {
        guard hashes.count <= maximumProofHashes else { return nil }
        var proof: [Data] = []
        for hash in hashes {
            guard hash.utf8.count == 44, let bytes = Data(base64Encoded: hash), bytes.count == Merkle.hashSize else { return nil }
            proof.append(bytes)
        }
        return proof
    }

    /// A size as the key of `proofs`: a canonical decimal (no sign, no leading zero) from 1 up.
    static func isSizeKey(_ key: String) -> Bool {
        guard key.utf8.count <= 19, let size = Int(key), size > 0 else { return false }
        return String(size) == key
    }

    private enum CodingKeys: String, CodingKey { case note, proofs }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let note = try container.decode(String.self, forKey: .note)
        let proofs = try container.decodeIfPresent([String: [String]].self, forKey: .proofs) ?? [:]
        func fail(_ message: String) -> DecodingError {
            DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: message))
        }
        guard note.utf8.count <= Cosignature.maximumNoteBytes else {
            throw fail("the note is longer than \(Cosignature.maximumNoteBytes) bytes")
        }
        guard proofs.count <= Self.maximumProofs else { throw fail("more than \(Self.maximumProofs) proofs") }
        for (size, hashes) in proofs {
            guard Self.isSizeKey(size) else { throw fail("proof size \"\(size.prefix(32))\" is not a decimal tree size above 0") }
            guard Self.decodeProof(hashes) != nil else {
                throw fail("the proof from size \(size) is not at most \(Self.maximumProofHashes) base64 hashes of 32 bytes")
            }
        }
        self.init(note: note, proofs: proofs)
    }

    /// Reads the JSON form: at most `maximumJSONBytes`, one value, no key twice
    /// (`StrictJSON`), then the bounds above.
    public static func decode(json: Data) throws -> PublishedCheckpoint {
        guard json.count <= maximumJSONBytes else {
            throw AuditError(.invalid, "published checkpoint: longer than \(maximumJSONBytes) bytes")
        }
        do {
            try StrictJSON.checkUniqueKeys(json)
            return try JSONDecoder().decode(PublishedCheckpoint.self, from: json)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error { throw AuditError(.invalid, "published checkpoint: \(context.debugDescription)") }
            throw AuditError(.invalid, "published checkpoint: expected {\"note\": text, \"proofs\": {size: [base64]}}")
        } catch {
            throw AuditError(.invalid, "published checkpoint: \(error)")
        }
    }
}

extension PublishedCheckpoint {
    /// What a node publishes after it took the checkpoint `note` of its log (as
    /// `AuditSink.checkpoint` signs and keeps it): the note, and the consistency proof to it from each of
    /// `sizes` (the sizes its witnesses last cosigned) that is above 0 and below the note's size.
    /// Sizes at or above it need no proof (a witness compares the root) or have none (the log
    /// would have shrunk); an empty log is a prefix of every log.
    ///
    /// The proofs come from one pass over the log's whole history in `stateDirectory`, which also
    /// checks that its first `size` entries still have the note's root; `trust` nil leaves out
    /// the entries' signatures, which the log's writer checked and a witness does not need. With
    /// no size to prove, the log is not read.
    public static func make(stateDirectory: String, note: SignedNote, provingFrom sizes: Set<Int>, trust: AuditTrust?) throws
        -> PublishedCheckpoint
    {
        let checkpoint = try Checkpoint(text: note.text)
        let rendered = note.rendered
        guard rendered.utf8.count <= Cosignature.maximumNoteBytes else {
            throw AuditError(.invalid, "the checkpoint note is longer than \(Cosignature.maximumNoteBytes) bytes")
        }
        let older = sizes.filter { $0 > 0 && $0 < checkpoint.size }.sorted()
        guard older.count <= maximumProofs else {
            throw AuditError(.invalid, "\(older.count) sizes to prove from; a published checkpoint holds at most \(maximumProofs)")
        }
        guard !older.isEmpty else { return PublishedCheckpoint(note: rendered) }

        var builders = older.map { MerkleProofBuilder(ranges: MerkleProofShape.consistency(from: $0, to: checkpoint.size)) }
        let store = FileStateStore(root: stateDirectory)
        let path = store.path(AuditLog.logKey)
        guard let fd = try store.open(AuditLog.logKey, flags: O_RDONLY) else { throw AuditError.io("open \(path)", ENOENT) }
        defer { close(fd) }
        var reached = false
        let (scan, _) = try AuditSegments.scanAll(fd: fd, store: store, trust: trust) { visited in
            for index in builders.indices { builders[index].add(leafHash: visited.leafHash) }
            guard visited.tree.size == checkpoint.size else { return true }
            guard visited.tree.root == checkpoint.root else {
                throw AuditError(.invalid, "the log's first \(checkpoint.size) entries no longer have the checkpoint's root")
            }
            reached = true
            return false
        }
        if let failure = scan.failure { throw AuditError.tampered(failure, path: path) }
        guard reached else { throw AuditError(.invalid, "the log is shorter than its checkpoint (\(checkpoint.size) entries)") }
        var proofs: [String: [String]] = [:]
        for (size, builder) in zip(older, builders) {
            guard let hashes = builder.proof else { throw AuditError(.invalid, "no consistency proof from size \(size)") }
            proofs[String(size)] = hashes.map { $0.base64EncodedString() }
        }
        return PublishedCheckpoint(note: rendered, proofs: proofs)
    }
}
