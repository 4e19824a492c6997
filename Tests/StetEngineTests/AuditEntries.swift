import Foundation
import StetAudit
import StetEngine
import StetState

/// The entries of the audit log in `store`, each signature checked against the operator keys
/// of the policy in force (the repository's at `repositoryTrust` while nothing is pinned).
func auditEntries(_ store: FileStateStore, repositoryTrust: String) throws -> [AuditEntry] {
    let trust = try OperatorLog.trust(store: store, repositoryTrust: repositoryTrust).trust
    var entries: [AuditEntry] = []
    let fd = open(store.root + "/audit/log.jsonl", O_RDONLY)
    defer { close(fd) }
    _ = try AuditScanner(trust: trust).scan(fd: fd, from: .start) { entries.append($0.entry); return true }
    return entries
}
