public import Foundation
public import StetCrypto
import StetCore

/// An audit log in memory, for engine tests: entries chained (`seq`, `prev`) and checkpointed
/// as the state directory's log makes them, kept as values to look at. No signature is kept per
/// entry; checkpoints are signed with `key`.
public final class MemoryAuditSink: AuditSink, @unchecked Sendable {
    public let actor: AuditEntry.Actor
    public let origin: String
    private let key: PrivateKey
    private let mutex = NSLock()
    private var stored: [AuditEntry] = []
    private var tree = MerkleAccumulator()
    private var prev = ""
    private var closed = false

    public init(key: PrivateKey, name: String = "operator", host: String = "memory", via: String = "daemon", origin: String = "stet/memory") {
        self.key = key
        self.origin = origin
        actor = AuditEntry.Actor(keyid: key.publicKey.keyID, name: name, host: host, via: via)
    }

    /// The entries appended so far, oldest first.
    public var entries: [AuditEntry] { mutex.withLock { stored } }

    public var size: Int { mutex.withLock { stored.count } }

    public var damages: [AuditDamage] { [] }

    public func append(_ records: [AuditRecord], now: Date) throws -> [AuditEntry] {
        try mutex.withLock {
            guard !closed else { throw AuditError(.io, "the audit log is closed") }
            let time = RFC3339.format(now, milliseconds: true)
            var (tree, prev, written) = (self.tree, self.prev, [AuditEntry]())
            for record in records {
                let entry = record.entry(seq: stored.count + written.count, time: time, prev: prev, actor: actor)
                let leaf = Merkle.leafHash(try entry.payload())
                tree.append(leafHash: leaf)
                prev = leaf.hexString
                written.append(entry)
            }
            (self.tree, self.prev) = (tree, prev)
            stored += written
            return written
        }
    }

    public func checkpoint(origin: String?, now: Date) throws -> SignedNote {
        let (size, root) = mutex.withLock { (tree.size, tree.root) }
        return try Checkpoint(origin: origin ?? self.origin, size: size, root: root).signed(with: key)
    }

    public func close() throws {
        try checkpoint()
        mutex.withLock { closed = true }
    }
}
