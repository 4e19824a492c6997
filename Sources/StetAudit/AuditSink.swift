public import Foundation
public import StetCrypto

/// Where the engine records what it decides and does (docs/architecture.md, "Audit log" and "A fleet on etcd"): entries
/// appended in order, each chained to the one before and signed, with checkpoints of the whole.
/// The state directory's signed log implements it (`AuditLog`), an in-memory log serves engine
/// tests (`MemoryAuditSink`), and a cluster's audit sink can implement the same.
///
/// Contract: `append` writes its records as consecutive entries that count as written once it
/// returns, or throws and writes none of them; the engine acts only after its intent is
/// appended. After `close`, appends throw.
public protocol AuditSink: AnyObject, Sendable {
    /// Appends `records` as consecutive entries; returns them as written.
    @discardableResult
    func append(_ records: [AuditRecord], now: Date) throws -> [AuditEntry]
    /// Appends an action's intent as `append` does, except that the entries count as written
    /// only once the returned `AuditSync` says so: the action waits for it before it changes
    /// anything (`ActionBegun.mayBegin`), and prepares meanwhile. A sink that keeps a signed head
    /// of its log may leave the head to the next append or checkpoint. So nothing but the
    /// intent's fsync stands between it and the action.
    func appendBeforeAction(_ records: [AuditRecord], now: Date) throws -> AuditSync
    /// Signs and keeps a checkpoint of the log as it is now (`origin` nil: the sink's own).
    @discardableResult
    func checkpoint(origin: String?, now: Date) throws -> SignedNote
    /// Keeps a checkpoint and lets the log go.
    func close() throws
    /// Entries in the log as this writer last saw it.
    var size: Int { get }
    /// Every restart after damage this writer made or saw, oldest first.
    var damages: [AuditDamage] { get }
}

extension AuditSink {
    public func appendBeforeAction(_ records: [AuditRecord], now: Date) throws -> AuditSync {
        try append(records, now: now)
        return .durable
    }

    @discardableResult
    public func append(_ record: AuditRecord, now: Date = Date()) throws -> AuditEntry {
        try append([record], now: now)[0]
    }

    @discardableResult
    public func checkpoint() throws -> SignedNote { try checkpoint(origin: nil, now: Date()) }
}

extension AuditLog: AuditSink {}
