public import Foundation

/// A backup policy's health as an outcome (docs/architecture.md, principle 5): healthy only when the newest
/// snapshot is younger than the RPO **and** the last check **and** the last restore test passed
/// (each when the policy asks for it).
public struct BackupHealth: Sendable, Equatable, Codable {
    public let healthy: Bool
    /// Why not, or what holds, one sentence each.
    public let findings: [String]

    public static func evaluate(_ policy: BackupPolicy, _ observed: ObservedBackup?, now: Date) -> BackupHealth {
        var healthy = true
        var findings: [String] = []
        guard let observed else { return BackupHealth(healthy: false, findings: ["never observed"]) }
        switch observed.repository {
        case .missing:
            return BackupHealth(healthy: false, findings: ["the repository \(policy.resticRepository) does not exist"])
        case .unreadable(let error):
            return BackupHealth(healthy: false, findings: [error])
        case .ready:
            break
        }
        if let newest = observed.newest(asOf: now) {
            let age = StetDuration(seconds: max(0, now.timeIntervalSince(newest))).rounded
            if now.timeIntervalSince(newest) < policy.rpo.seconds {
                findings.append("newest snapshot \(age) old (RPO \(policy.rpo))")
            } else {
                healthy = false
                findings.append("newest snapshot \(age) old, past the RPO of \(policy.rpo)")
            }
        } else {
            healthy = false
            let future = observed.future(asOf: now).count
            findings.append(future == 0 ? "no snapshot" : "no snapshot dated before now (\(future) dated after it: the clock went back?)")
        }
        if policy.checkEvery != nil {
            if let check = observed.lastCheck {
                if !check.ok { healthy = false }
                findings.append((check.ok ? "check passed: " : "check FAILED: ") + check.detail)
            } else {
                healthy = false
                findings.append("no check has run")
            }
        }
        if policy.restoreTestEvery != nil {
            if let test = observed.lastRestoreTest {
                if !test.ok { healthy = false }
                findings.append((test.ok ? "restore test passed: " : "restore test FAILED: ") + test.detail)
            } else {
                healthy = false
                findings.append("no restore test has run")
            }
        }
        return BackupHealth(healthy: healthy, findings: findings)
    }
}
