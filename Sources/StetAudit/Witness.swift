public import Foundation
public import StetCrypto

/// One node's witness of its peers' audit logs (DESIGN.md section 12, "Audit in a fleet"): for
/// each peer, the last checkpoint it cosigned. A peer's new checkpoint is cosigned
/// (c2sp.org/tlog-cosignature) only when it is consistent with that one; a checkpoint that would
/// take the peer's history back or rewrite it is a fork, and the witness keeps holding the peer
/// to the old tree. A plain value: the caller persists it (JSON, `root` as base64) and decides
/// what to do with a verdict.
///
/// Contract of `witness`: it changes `peers[peer]` only when it returns `.cosigned`.
public struct Witness: Codable, Equatable, Sendable {
    /// The last checkpoint cosigned for one peer.
    public struct Cosigned: Codable, Equatable, Sendable {
        public let size: Int
        public let root: Data
        /// The peer's signed checkpoint note with this witness's cosignature.
        public let note: String

        public init(size: Int, root: Data, note: String) {
            self.size = size
            self.root = root
            self.note = note
        }

        private enum CodingKeys: String, CodingKey { case size, root, note }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let size = try container.decode(Int.self, forKey: .size)
            let root = try container.decode(Data.self, forKey: .root)
            let note = try container.decode(String.self, forKey: .note)
            guard size >= 0, root.count == Merkle.hashSize, note.utf8.count <= Cosignature.maximumNoteBytes else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: decoder.codingPath,
                    debugDescription: "expected a size from 0, a root of 32 bytes and a note of at most "
                        + "\(Cosignature.maximumNoteBytes) bytes"))
            }
            self.init(size: size, root: root, note: note)
        }
    }

    /// Peer name → the last checkpoint cosigned for it.
    public private(set) var peers: [String: Cosigned]

    public init(peers: [String: Cosigned] = [:]) { self.peers = peers }

    /// What `witness` decided.
    public enum Verdict: Equatable, Sendable {
        /// Consistent with what was cosigned before (or the first seen): the peer's checkpoint
        /// note with this witness's cosignature line added, to hand back to the peer.
        case cosigned(note: String)
        /// The very note cosigned before (same text, so same size and root): nothing is signed
        /// again; the cosignature in `peers[peer].note` still says it. Signing again would only
        /// move its timestamp, at the cost of one write per witness per round.
        case unchanged
        /// The peer's checkpoint conflicts with the one cosigned before; not cosigned.
        case fork(Fork)
        /// Not a checkpoint of this peer at all (unparsable, another origin, not signed by the
        /// peer's key): refused, and no evidence against the peer.
        case invalid(String)
    }

    /// A checkpoint that conflicts with the one cosigned before, and the two notes.
    ///
    /// | reason | new checkpoint | evidence |
    /// |---|---|---|
    /// | `truncated` | smaller size | both notes, each signed by the peer's key |
    /// | `rewritten` | same size, another root | both notes, each signed by the peer's key |
    /// | `inconsistent` | larger size, proof missing or not verifying | none on its own: the proofs are not signed, so whoever carries them can drop or change them |
    public struct Fork: Codable, Equatable, Sendable {
        public enum Reason: String, Codable, Sendable {
            case truncated, rewritten, inconsistent
        }

        public let peer: String
        public let reason: Reason
        /// The note cosigned before (the peer's signature and this witness's cosignature).
        public let cosigned: String
        /// The conflicting note as the peer published it.
        public let conflicting: String
        /// What conflicts, in a sentence.
        public let message: String
    }

    /// Lets go of `peer` (a node that left the fleet): a checkpoint seen from it later is taken
    /// on first use again, so this is an operator's decision, never a reaction to a fork.
    public mutating func forget(peer: String) { peers[peer] = nil }

    /// Checks `published`, the checkpoint of the peer `peer`, and cosigns it as the witness
    /// `name` with `key` at `now` when it is consistent with the last one cosigned for that peer.
    /// `peerVerifier` is the peer's node key under the origin its checkpoints carry.
    public mutating func witness(
        peer: String, published: PublishedCheckpoint, peerVerifier: NoteVerifier, name: String, key: PrivateKey, now: Date
    ) -> Verdict {
        // 1. A checkpoint of this peer: bounded, parsed, of the peer's origin, signed by its key.
        guard published.note.utf8.count <= Cosignature.maximumNoteBytes else {
            return .invalid("\(peer)'s checkpoint note is longer than \(Cosignature.maximumNoteBytes) bytes")
        }
        let note: SignedNote
        let checkpoint: Checkpoint
        do {
            note = try SignedNote(parsing: published.note)
            checkpoint = try Checkpoint(text: note.text)
        } catch {
            return .invalid("\(peer)'s checkpoint does not parse: \(error)")
        }
        guard checkpoint.origin == peerVerifier.name else {
            return .invalid("\(peer)'s checkpoint has origin \"\(checkpoint.origin)\", expected \"\(peerVerifier.name)\"")
        }
        guard !note.validSigners(among: [peerVerifier]).isEmpty else {
            return .invalid("\(peer)'s checkpoint is not signed by \(peer)'s key under \"\(peerVerifier.name)\"")
        }
        guard peerVerifier.publicKey != key.publicKey else {
            return .invalid("\(peer) signs with this witness's own key: a node does not witness its own log")
        }

        // 2. Against the last checkpoint cosigned for the peer. The first one seen is cosigned
        // without a proof: trust on first use. It is the reference from then on.
        if let last = peers[peer] {
            func fork(_ reason: Fork.Reason, _ message: String) -> Verdict {
                .fork(Fork(peer: peer, reason: reason, cosigned: last.note, conflicting: published.note, message: message))
            }
            if checkpoint.size < last.size {
                return fork(.truncated, "\(peer)'s log has \(checkpoint.size) entries; it had \(last.size) when last cosigned")
            }
            if checkpoint.size == last.size {
                guard checkpoint.root == last.root else {
                    return fork(.rewritten, "\(peer)'s first \(last.size) entries have another root than when last cosigned")
                }
                if (try? SignedNote(parsing: last.note))?.text == note.text { return .unchanged }
            } else if last.size > 0 {
                // An empty tree is a prefix of every tree; any other needs its proof.
                guard let proof = published.proof(from: last.size) else {
                    return fork(.inconsistent, "no valid consistency proof from size \(last.size), the size last cosigned")
                }
                guard let oldSize = UInt64(exactly: last.size), let newSize = UInt64(exactly: checkpoint.size),
                    MerkleVerifier.verifyConsistency(
                        oldSize: oldSize, newSize: newSize, oldRoot: last.root, newRoot: checkpoint.root, proof: proof)
                else {
                    return fork(.inconsistent, "the proof from size \(last.size) does not lead to \(peer)'s new root")
                }
            }
        }

        // 3. Cosign, then hold the peer to this tree.
        var cosigned = note
        do {
            try cosigned.cosign(name: name, with: key, time: now)
        } catch {
            return .invalid("cannot cosign \(peer)'s checkpoint: \(error)")
        }
        let rendered = cosigned.rendered
        guard rendered.utf8.count <= Cosignature.maximumNoteBytes else {
            return .invalid("\(peer)'s checkpoint carries so many signatures that a cosignature makes it longer than "
                + "\(Cosignature.maximumNoteBytes) bytes")
        }
        peers[peer] = Cosigned(size: checkpoint.size, root: checkpoint.root, note: rendered)
        return .cosigned(note: rendered)
    }
}
