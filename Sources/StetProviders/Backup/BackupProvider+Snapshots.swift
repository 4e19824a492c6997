public import Foundation
public import StetCore
import StetState

/// `stet backups`: each policy's snapshots as restic lists them (one `restic snapshots` per
/// policy), with what Stet recorded of them: size and files when Stet made them, and restore
/// tests.
extension BackupProvider {
    /// What Stet knows of one snapshot beyond restic's list (`Record.snapshots`).
    public struct SnapshotFacts: Codable, Sendable, Equatable {
        /// The id as restic gave it to Stet (the short id of a backup's summary or a restore).
        public var id: String
        public var files: Int?
        public var bytes: Int?
        public var restoreTest: ObservedBackup.Verification?

        public init(id: String, files: Int? = nil, bytes: Int? = nil, restoreTest: ObservedBackup.Verification? = nil) {
            self.id = id
            self.files = files
            self.bytes = bytes
            self.restoreTest = restoreTest
        }
    }

    /// Snapshots whose facts a record keeps, the newest last (older ones are dropped).
    public static let factsLimit = 200
    /// The largest count or size a record holds: 2^53, which every JSON reader reads exactly.
    public static let maximumCount = 1 << 53
    /// restic's output for one snapshot list, at most (about 100,000 snapshots).
    public static let maximumListOutput = 64 << 20

    /// Adds what Stet learnt of snapshot `id` to `record` (a new snapshot's size, a restore
    /// test), keeping at most `factsLimit` snapshots. Numbers are clamped to what a record holds.
    static func note(_ id: String, in record: inout Record, _ update: (inout SnapshotFacts) -> Void) {
        guard isSnapshotID(id) else { return }
        var facts = record.snapshots ?? []
        var fact = facts.first { $0.id == id } ?? SnapshotFacts(id: id)
        facts.removeAll { $0.id == id }
        update(&fact)
        fact.files = fact.files.map { min(max($0, 0), maximumCount) }
        fact.bytes = fact.bytes.map { min(max($0, 0), maximumCount) }
        facts.append(fact)
        record.snapshots = Array(facts.suffix(factsLimit))
    }

    /// A restic snapshot id or short id: 8 to 64 lowercase hexadecimal digits.
    static func isSnapshotID(_ id: String) -> Bool {
        (8...64).contains(id.utf8.count) && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// What makes a record's snapshot facts unusable, or nil: more of them than Stet keeps, an
    /// id out of form, a negative or too large number.
    static func factsProblem(_ record: Record) -> String? {
        guard let facts = record.snapshots else { return nil }
        if facts.count > factsLimit { return "it has facts of \(facts.count) snapshots, Stet keeps at most \(factsLimit)" }
        for fact in facts {
            if !isSnapshotID(fact.id) { return "snapshot id \(fact.id.prefix(80)) is not 8 to 64 hexadecimal digits" }
            for (field, value) in [("files", fact.files), ("bytes", fact.bytes)] {
                if let value, !(0...maximumCount).contains(value) { return "\(field) \(value) of snapshot \(fact.id) is not from 0 to \(maximumCount)" }
            }
        }
        return nil
    }

    /// One snapshot as `stet backups` shows it.
    public struct ListedSnapshotInfo: Codable, Sendable, Equatable {
        public var id: String
        public var shortId: String
        public var time: Date
        public var hostname: String?
        public var paths: [String]
        public var tags: [String]
        /// Files and bytes backed up, when Stet made the snapshot.
        public var files: Int?
        public var bytes: Int?
        /// The last restore test of this snapshot, when there was one.
        public var restoreTest: ObservedBackup.Verification?
    }

    /// A policy's snapshots, newest first, or why they could not be listed.
    public struct PolicySnapshots: Codable, Sendable {
        public var policy: String
        public var repository: String
        public var snapshots: [ListedSnapshotInfo]
        public var error: String?
    }

    /// A policy name `stet backups` was given that the release in force does not have.
    public struct UnknownPolicy: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The snapshots of `only` (every policy of `desired` when nil), each policy's newest first.
    /// A repository that cannot be listed gives its policy an `error`, not the others.
    public func snapshotLists(_ desired: DesiredState, only: String? = nil) throws -> [PolicySnapshots] {
        let names: [String]
        if let only {
            guard desired.backupPolicies[only] != nil else {
                throw UnknownPolicy(
                    description: "no backup policy \(only) in the release in force"
                        + (desired.backupPolicies.isEmpty ? " (it has none)" : " (it has \(desired.backupPolicies.keys.sorted().joined(separator: ", ")))"))
            }
            names = [only]
        } else {
            names = desired.backupPolicies.keys.sorted()
        }
        return names.compactMap { name in desired.backupPolicies[name].map { snapshotList($0) } }
    }

    /// One policy's snapshots, newest first.
    func snapshotList(_ policy: BackupPolicy) -> PolicySnapshots {
        let name = policy.metadata.name
        let repository = repository(policy)
        var list = PolicySnapshots(policy: name, repository: repository, snapshots: [], error: nil)
        do {
            let tag = "stet:\(name)"
            let facts = (try record(name))?.snapshots ?? []
            let listed = try listSnapshots(repository, passwordFile: passwordFile(policy), tag: tag).filter { $0.tags.contains(tag) }
            list.snapshots = listed.sorted { ($0.time, $0.id) > ($1.time, $1.id) }.map { snapshot in
                let fact = facts.last { snapshot.id.hasPrefix($0.id) }
                return ListedSnapshotInfo(
                    id: snapshot.id, shortId: String(snapshot.id.prefix(8)), time: snapshot.time, hostname: snapshot.hostname,
                    paths: snapshot.paths, tags: snapshot.tags, files: fact?.files, bytes: fact?.bytes, restoreTest: fact?.restoreTest)
            }
        } catch {
            list.error = "\(error)"
        }
        return list
    }
}
