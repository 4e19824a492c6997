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
    /// Appends as `append` does, and the entries count as written once it returns, but a sink
    /// that keeps a signed head of its log may leave the head to the next append or checkpoint:
    /// for an intent, so that nothing but its fsync stands between it and the action.
    @discardableResult
    func appendBeforeAction(_ records: [AuditRecord], now: Date) throws -> [AuditEntry]
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
    @discardableResult
    public func appendBeforeAction(_ records: [AuditRecord], now: Date) throws -> [AuditEntry] { try append(records, now: now) }

    @discardableResult
    public func append(_ record: AuditRecord, now: Date = Date()) throws -> AuditEntry {
        try append([record], now: now)[0]
    }

    @discardableResult
    public func checkpoint() throws -> SignedNote { try checkpoint(origin: nil, now: Date()) }
}

extension AuditLog: AuditSink {}
