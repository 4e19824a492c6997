public import Foundation
public import StetAudit
import StetCore
public import StetCrypto
import StetManifest
import StetState

/// Witnessed audit logs (docs/architecture.md, "Witnessed audit"): each node's log stays on its
/// host, and the fleet's other nodes witness it. A node publishes a checkpoint of its log to
/// `checkpoints/NAME` (a `PublishedCheckpoint`: the note signed by its node key under the origin
/// `stet/CLUSTER/NAME`, with consistency proofs from each size its witnesses last cosigned) when
/// its log grew, at most every `checkpointInterval` seconds. Every other node checks it against
/// the last checkpoint it cosigned for that node (`Witness`) and, when it is consistent, writes
/// its C2SP cosignature to `cosignatures/NAME/WITNESS`. A checkpoint that is not consistent is a
/// fork: the witness refuses, keeps both notes as evidence in `fleet/forks/` and raises
/// `StetAuditFork` naming the node.
extension FleetNode {
    /// The origin of `node`'s checkpoints in this cluster.
    func origin(of node: String) -> String { "stet/\(keys.cluster)/\(node)" }

    /// The name a node cosigns under: its key's name in the trust policy (unique there), so a
    /// reader checks a cosignature with the policy alone.
    var witnessName: String? { trust.keys(in: .node).first { $0.publicKey == key.publicKey }?.name }

    /// The node keys of the policy by name, but this node's: the keys whose cosignatures count.
    func witnessKeys(excluding node: String? = nil) -> [String: PublicKey] {
        var keys: [String: PublicKey] = [:]
        for entry in trust.keys(in: .node) { keys[entry.name] = entry.publicKey }
        if let node, let keyID = lock.withLock({ state.nodes[node]?.keyID }),
            let own = keys.first(where: { $0.value.keyID == keyID })?.key
        {
            keys[own] = nil
        }
        return keys
    }

    /// Runs until cancelled: publishes this node's checkpoints and witnesses the others'.
    func witnessFleet() async {
        var witness = loadWitness()
        var published: (size: Int, at: UInt64)?
        var handled: [String: Int64] = [:]
        while !Task.isCancelled {
            if lock.withLock({ state.loaded && state.lease != nil }) {
                published = await publishCheckpoint(last: published)
                for (peer, kv) in peerCheckpoints() where handled[peer] != kv.modRevision {
                    if await witnessCheckpoint(peer: peer, value: kv.value, witness: &witness) { handled[peer] = kv.modRevision }
                }
            }
            await Self.sleep(0.5)
        }
    }

    // MARK: - Publishing

    /// Publishes a checkpoint when the log grew since the last one and `checkpointInterval` has
    /// passed, or every ten intervals anyway (a witness that missed one catches up).
    private func publishCheckpoint(last: (size: Int, at: UInt64)?) async -> (size: Int, at: UInt64)? {
        guard let size = auditCount() else { return last }
        let now = Self.now()
        let interval = UInt64(options.checkpointInterval * 1e9)
        if let last, now &- last.at < interval || (last.size == size && now &- last.at < 10 &* interval) { return last }
        do {
            let note = try checkpointMaker(origin(of: me))
            let sizes = witnessedSizes()
            let checkpoint = try PublishedCheckpoint.make(stateDirectory: store.root, note: note, provingFrom: sizes, trust: nil)
            _ = try await client.put(keys.checkpoint(me), try JSONEncoder().encode(checkpoint))
            return (size, now)
        } catch {
            events(.log("cannot publish this node's audit checkpoint: \(error)"))
            return (last?.size ?? -1, now)
        }
    }

    /// The sizes this node's witnesses last cosigned (their cosignatures verified), at most 64:
    /// the publisher proves consistency from each.
    private func witnessedSizes() -> Set<Int> {
        let prefix = keys.cosignatures(of: me)
        let values = lock.withLock { state.mirror.filter { $0.key.hasPrefix(prefix) }.map(\.value.value) }
        let others = witnessKeys(excluding: me)
        var sizes: Set<Int> = []
        for value in values.prefix(PublishedCheckpoint.maximumProofs) {
            let note = String(decoding: value, as: UTF8.self)
            guard !Cosignature.witnesses(of: note, among: others).isEmpty, let parsed = try? SignedNote(parsing: note),
                let checkpoint = try? Checkpoint(text: parsed.text)
            else { continue }
            sizes.insert(checkpoint.size)
        }
        return sizes
    }

    // MARK: - Witnessing

    /// The checkpoints of the other live nodes, by node.
    private func peerCheckpoints() -> [(String, EtcdClient.KeyValue)] {
        lock.withLock {
            state.nodes.keys.filter { $0 != me }.sorted().compactMap { peer in state.mirror[keys.checkpoint(peer)].map { (peer, $0) } }
        }
    }

    /// Witnesses `peer`'s published checkpoint. Returns whether it is done with this value (a
    /// cosignature that could not be written is tried again).
    private func witnessCheckpoint(peer: String, value: Data, witness: inout Witness) async -> Bool {
        guard let name = witnessName else { return true }
        let published: PublishedCheckpoint
        do {
            published = try PublishedCheckpoint.decode(json: value)
        } catch {
            lock.withLock { rejectOnce(keys.checkpoint(peer), "not a published checkpoint: \(error)") }
            return true
        }
        guard let keyID = lock.withLock({ state.nodes[peer]?.keyID }),
            let peerKey = trust.keys(in: .node).first(where: { $0.publicKey.keyID == keyID })?.publicKey,
            let verifier = try? NoteVerifier(name: origin(of: peer), publicKey: peerKey)
        else { return true }
        let before = witness
        switch witness.witness(peer: peer, published: published, peerVerifier: verifier, name: name, key: key, now: Date()) {
        case .cosigned(let note):
            // Kept before it is published: a restart never cosigns an older tree again.
            guard saveWitness(witness) else {
                witness = before
                return false
            }
            do {
                _ = try await client.put(keys.cosignature(of: peer, by: me), Data(note.utf8))
                return true
            } catch {
                return false
            }
        case .unchanged:
            return true
        case .fork(let fork):
            keepEvidence(fork)
            events(.auditFork(peer: peer, message: fork.message))
            return true
        case .invalid(let reason):
            lock.withLock { rejectOnce(keys.checkpoint(peer), reason) }
            return true
        }
    }

    /// `fleet/witness.json`: the last checkpoint cosigned per peer.
    static let witnessKey = "fleet/witness.json"

    private func loadWitness() -> Witness {
        guard let data = try? store.read(Self.witnessKey) else { return Witness() }
        do {
            return try JSONDecoder().decode(Witness.self, from: data)
        } catch {
            // Never a fresh start in silence: trust on first use again is an operator's decision.
            events(.log("\(store.path(Self.witnessKey)) cannot be read (\(error)): witnessing starts again from each node's next checkpoint"))
            return Witness()
        }
    }

    private func saveWitness(_ witness: Witness) -> Bool {
        do {
            try store.write(Self.witnessKey, try JSONEncoder().encode(witness))
            return true
        } catch {
            events(.log("cannot keep what this node witnessed in \(store.root): \(error)"))
            return false
        }
    }

    /// Both checkpoints of a fork, once per conflicting note, in `fleet/forks/PEER-SECONDS.json`.
    private func keepEvidence(_ fork: Witness.Fork) {
        let digest = SHA256.hash(Data(fork.conflicting.utf8)).hexString.prefix(16)
        let key = "fleet/forks/\(fork.peer)-\(digest).json"
        guard (try? store.read(key)) == nil else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            try store.write(key, try encoder.encode(fork))
        } catch {
            events(.log("cannot keep the evidence of \(fork.peer)'s fork in \(store.root): \(error)"))
        }
    }
}

/// What `stet audit verify --cluster` checks a node's log against: the newest checkpoint of it
/// that at least `quorum` other nodes cosigned.
public enum WitnessedCheckpoint {
    public struct Found: Sendable, Equatable {
        /// The checkpoint note, with the node's signature and the witnesses' cosignatures.
        public var note: String
        public var size: Int
        public var witnesses: [String]
    }

    /// From the values of `cosignatures/NODE/…`: each checkpoint (by size and root) and who
    /// cosigned it (cosignatures checked with `witnessKeys`, the node's own key left out);
    /// the newest with at least `quorum` witnesses, and the largest tree any witness holds.
    public static func newest(_ values: [Data], witnessKeys: [String: PublicKey], quorum: Int) -> (chosen: Found?, largest: Found?) {
        var byTree: [String: Found] = [:]
        for value in values.prefix(1000) {
            let note = String(decoding: value, as: UTF8.self)
            let names = Cosignature.witnesses(of: note, among: witnessKeys)
            guard !names.isEmpty, let parsed = try? SignedNote(parsing: note), let checkpoint = try? Checkpoint(text: parsed.text) else { continue }
            let tree = "\(checkpoint.size) \(checkpoint.root.base64EncodedString())"
            var found = byTree[tree] ?? Found(note: note, size: checkpoint.size, witnesses: [])
            found.witnesses = Array(Set(found.witnesses + names)).sorted()
            byTree[tree] = found
        }
        let ordered = byTree.values.sorted { ($0.size, $0.witnesses.count) > ($1.size, $1.witnesses.count) }
        return (ordered.first { $0.witnesses.count >= max(1, quorum) }, ordered.first)
    }
}
