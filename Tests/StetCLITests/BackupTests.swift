import Foundation
import StetCore
import StetCrypto
import StetPlanner
import StetProviders
import StetTesting
import Testing

/// Backup policies against real restic repositories and real files.
@Suite struct BackupTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]
    static let password = "correct horse battery staple 7f3a"

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
        try repo.root.write("secrets/restic.pw", Self.password + "\n", mode: 0o600)
        for index in 0..<20 {
            try repo.root.write("data/dir\(index % 3)/file\(index).txt", String(repeating: "line \(index) of the data\n", count: 200 + index))
        }
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    func policy(every: String = "1h", rpo: String = "2h", retention: String? = nil, check: String? = nil, restoreTest: String? = nil,
                password: String = "secrets/restic.pw") throws
    {
        try repo.root.write("manifests/backup.yaml", Samples.backupPolicy(
            name: "files", repository: "backups/files", passwordFile: password, paths: ["data"], every: every, rpo: rpo,
            retention: retention, check: check, restoreTest: restoreTest))
        try repo.sign(["alice"])
    }

    /// restic run directly, as an operator would.
    func restic(_ arguments: String..., password: String? = nil) throws -> ProcessOutput {
        try StetTesting.run(
            "restic", ["-r", repo.root.file("backups/files")] + arguments, in: repo.root.path,
            environment: ["RESTIC_PASSWORD_FILE": password ?? repo.root.file("secrets/restic.pw")])
    }

    func plan() throws -> Plan {
        let output = try stet("plan", "--json")
        #expect(output.status == 0, "\(output.combined)")
        return try JSONDecoder().decode(Plan.self, from: Data(output.stdout.utf8))
    }

    func summary(_ plan: Plan) -> [String] { plan.changes.map { "\($0.action) \($0.cause.rawValue)" } }

    func snapshotIDs() throws -> [String] {
        struct Snapshot: Decodable { let id: String }
        return try JSONDecoder().decode([Snapshot].self, from: Data(try restic("snapshots", "--json", "--tag", "stet:files").stdout.utf8)).map(\.id).sorted()
    }

    @Test func aNewPolicyIsInitialisedBackedUpAndVerified() throws {
        try policy(check: "1d", restoreTest: "7d")
        #expect(summary(try plan()) == ["init-repository config", "backup config", "check schedule", "restore-test schedule"])
        // While Stet drives restic, no process's command line holds the password.
        let background = try BackgroundProcess(Binary.stet, ["apply", "--auto-approve"], in: repo.root.path, environment: ci)
        var sawRestic = false
        while background.isRunning {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(name) != nil {
                guard let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { continue }
                let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
                if line.contains("restic") && line.contains("backups/files") { sawRestic = true }
                #expect(!line.contains(Self.password))
            }
            usleep(2_000)
        }
        #expect(background.stop() == 0, "\(background.output)")
        #expect(sawRestic)
        let apply = ProcessOutput(status: 0, stdout: background.output, stderr: "")
        #expect(try snapshotIDs().count == 1)
        #expect(try plan().changes.isEmpty)
        let status = try stet("status")
        #expect(status.status == 0, "\(status.combined)")
        #expect(status.stdout.contains("BackupPolicy/files  healthy"))
        #expect(status.stdout.contains("restore test passed"))

        // A restore through Stet, audited.
        let restore = try stet("restore", "files", "--target", "restored", environment: ci)
        #expect(restore.status == 0, "\(restore.combined)")
        let original = repo.root.file("data/dir1/file4.txt")
        #expect(FileManager.default.contentsEqual(atPath: original, andPath: repo.root.file("restored") + original))
        let refused = try stet("restore", "files", "--target", "restored", environment: ci)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("not empty"))

        // The password is nowhere but in its own file.
        var everything = status.combined + apply.combined + (try stet("plan", "--json").stdout) + (try stet("audit", "list", "--json").stdout)
        for (name, data) in repo.root.snapshot(".stet") where !name.hasPrefix("backup/cache") { everything += "\(name) " + String(decoding: data, as: UTF8.self) }
        everything += String(decoding: repo.root.read(".stet/audit/log.jsonl") ?? Data(), as: UTF8.self)
        #expect(!everything.contains(Self.password))
        #expect(!everything.contains(Self.password.prefix(12)))
    }

    @Test func theRPODecidesBetweenDriftScheduleAndNothing() throws {
        try policy(every: "1h", rpo: "2h")
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        // Only an old snapshot: past the RPO.
        for id in try snapshotIDs() { _ = try restic("forget", id) }
        let old = RFC3339.format(Date().addingTimeInterval(-3 * 3600)).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
        #expect(try restic("backup", "--tag", "stet:files", "--time", old, repo.root.file("data")).status == 0)
        let late = try plan()
        #expect(summary(late) == ["backup drift"])
        #expect(late.changes[0].reason.message.contains("past the RPO of 2h"))
        #expect(try stet("plan", "--detailed-exitcode").status == 3)
        // 90 minutes old: due by `every`, not late.
        let due = RFC3339.format(Date().addingTimeInterval(-5400)).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
        #expect(try restic("backup", "--tag", "stet:files", "--time", due, repo.root.file("data")).status == 0)
        #expect(summary(try plan()) == ["backup schedule"])
        #expect(try stet("plan", "--detailed-exitcode").status == 2)
        // Fresh: nothing to do.
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(try plan().changes.isEmpty)
    }

    @Test func retentionKeepsExactlyWhatResticKeeps() throws {
        try policy(retention: "{last: 2, hourly: 3, daily: 3, weekly: 2}")
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        for id in try snapshotIDs() { _ = try restic("forget", id) }
        let base = Date().addingTimeInterval(-30 * 86_400)
        let offsets: [Double] = [0, 1, 2, 3.5, 7, 8, 15, 15.2, 15.4, 22, 28, 29, 29.5, 29.9, 29.95, 29.98]
        for days in offsets {
            let time = RFC3339.format(base.addingTimeInterval(days * 86_400)).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
            #expect(try restic("backup", "--tag", "stet:files", "--time", time, repo.root.file("data")).status == 0)
        }
        // What restic itself would keep, and what Stet computes for its plan.
        let dryRun = try restic("forget", "--dry-run", "--json", "--tag", "stet:files", "--group-by", "tags", "--keep-last", "2",
                                "--keep-hourly", "3", "--keep-daily", "3", "--keep-weekly", "2")
        struct Group: Decodable {
            struct Item: Decodable {
                let id: String
                let time: String
            }
            let keep: [Item]
            let remove: [Item]?
        }
        let groups = try JSONDecoder().decode([Group].self, from: Data(dryRun.stdout.utf8))
        let resticKeeps = Set(groups.flatMap { $0.keep.map(\.id) })
        let all = groups.flatMap { $0.keep + ($0.remove ?? []) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let snapshots = all.map { ObservedBackup.Snapshot(id: $0.id, time: formatter.date(from: $0.time) ?? ISO8601DateFormatter().date(from: $0.time)!) }
        #expect(RetentionPolicy.keep(snapshots, BackupPolicy.Retention(last: 2, hourly: 3, daily: 3, weekly: 2)) == resticKeeps)

        let plan = try plan()
        #expect(plan.changes.contains { $0.action == .backup(.forget) && $0.reason.message.contains("removes \(all.count - resticKeeps.count) of \(all.count)") })
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        // The apply backs up if one is due, then forgets: what remains is exactly what the rules
        // keep of the old snapshots plus any new one.
        struct Listed: Decodable {
            let id: String
            let time: String
        }
        let listed = try JSONDecoder().decode([Listed].self, from: Data(try restic("snapshots", "--json", "--tag", "stet:files").stdout.utf8))
        let fresh = listed.filter { id in !all.contains { $0.id == id.id } }
        #expect(fresh.count == (plan.changes.contains { $0.action == .backup(.backup) } ? 1 : 0))
        let withFresh = snapshots + fresh.map {
            ObservedBackup.Snapshot(id: $0.id, time: formatter.date(from: $0.time) ?? ISO8601DateFormatter().date(from: $0.time)!)
        }
        let predicted = RetentionPolicy.keep(withFresh, BackupPolicy.Retention(last: 2, hourly: 3, daily: 3, weekly: 2))
        #expect(Set(listed.map(\.id)) == predicted)
    }

    @Test func corruptedPackDataFailsTheCheckAndTheRestoreTest() throws {
        try policy(check: "1s", restoreTest: "1s")
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        #expect(try stet("status").status == 0)
        // Overwrite bytes inside every data pack.
        let data = repo.root.file("backups/files/data")
        for case let name as String in FileManager.default.enumerator(atPath: data)! where !name.contains("/") == false {
            let path = data + "/" + name
            guard var bytes = FileManager.default.contents(atPath: path), bytes.count > 400 else { continue }
            for offset in stride(from: 100, to: min(bytes.count - 50, 4000), by: 97) { bytes[offset] ^= 0xFF }
            chmod(path, 0o644)
            try bytes.write(to: URL(fileURLWithPath: path))
        }
        var failedCheck = false
        for _ in 0..<6 where !failedCheck {
            usleep(1_100_000)
            _ = try stet("apply", "--auto-approve", environment: ci)
            let status = try stet("status")
            failedCheck = status.stdout.contains("check FAILED")
        }
        #expect(failedCheck)
        let status = try stet("status")
        #expect(status.status == 3)
        #expect(status.stdout.contains("restore test FAILED"), "\(status.stdout)")
        let entries = try stet("audit", "list", "--json").stdout.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(entries.contains { $0["action"] as? String == "check" && $0["outcome"] as? String == "failed" })
        #expect(entries.contains { $0["action"] as? String == "restore-test" && $0["outcome"] as? String == "failed" })
    }

    @Test func aRepositoryDeletedOutOfBandIsDrift() throws {
        try policy()
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        try FileManager.default.removeItem(atPath: repo.root.file("backups/files"))
        #expect(summary(try plan()) == ["init-repository drift", "backup drift"])
    }

    @Test func wrongPasswordMissingRepositoryAndALockAreToldApart() throws {
        try policy(check: "1s")
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        // A held lock: a backup from a pipe that stays open holds restic's lock; check needs it.
        // Stet waits for it (STET_RESTIC_LOCK_WAIT, here 3 s), then says it is held.
        let holder = try BackgroundProcess("/bin/sh", ["-c", "sleep 60.\(getpid()) | restic -r backups/files backup --stdin --stdin-filename held-\(getpid())"],
                                           in: repo.root.path, environment: ["RESTIC_PASSWORD_FILE": repo.root.file("secrets/restic.pw")])
        func release() {
            _ = try? StetTesting.run("pkill", ["-KILL", "-f", "stdin-filename held-\(getpid())"])
            _ = try? StetTesting.run("pkill", ["-KILL", "-f", "sleep 60.\(getpid())"])
            holder.stop(SIGKILL, timeout: 5)
        }
        defer { release() }
        #expect(eventually { FileManager.default.fileExists(atPath: repo.root.file("backups/files/locks")) &&
            ((try? FileManager.default.contentsOfDirectory(atPath: repo.root.file("backups/files/locks"))) ?? []).count > 0 })
        usleep(1_100_000)
        var waiting = ci
        waiting["STET_RESTIC_LOCK_WAIT"] = "3"
        let started = Date()
        let locked = try stet("apply", "--auto-approve", environment: waiting)
        #expect(locked.stdout.contains("is locked by another restic process"), "\(locked.combined)")
        #expect(Date().timeIntervalSince(started) >= 2, "the lock was not waited for")
        release()
        _ = try restic("unlock")

        // A wrong password file: the plan reports it and plans nothing for the policy.
        try repo.root.write("secrets/wrong.pw", "not it\n", mode: 0o600)
        try policy(check: "1s", password: "secrets/wrong.pw")
        let wrong = try stet("plan")
        #expect(wrong.stdout.contains("does not hold its password"), "\(wrong.combined)")
        #expect(!wrong.stdout.contains("init-repository"))

        // A missing repository: a restore says so.
        try policy(check: "1s")
        try FileManager.default.moveItem(atPath: repo.root.file("backups/files"), toPath: repo.root.file("backups/moved"))
        let missing = try stet("restore", "files", "--target", "out", environment: ci)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("there is no restic repository at"), "\(missing.combined)")
    }
}

extension BackupTests {
    /// `stet run` makes the backups that are due, on its own.
    @Test func theLoopBacksUpWhatIsDue() throws {
        try policy()
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer { run.stop() }
        #expect(eventually(timeout: 60) { ((try? snapshotIDs()) ?? []).count == 1 }, "\(run.output)")
        #expect(run.stop() == 0)
        let entries = try stet("audit", "list", "--json").stdout
        #expect(entries.contains(#""action":"backup""#))
        #expect(entries.contains(#""via":"daemon""#))
    }
}

extension BackupTests {
    /// The snapshot cache of a repository is named by an HMAC under a random key kept in the
    /// state directory, not by a hash of the repository and the password (which anyone who can
    /// list the folder could check guesses against offline).
    @Test func cacheNamesSayNothingAboutThePassword() throws {
        try policy()
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        _ = try plan()
        func cacheNames(_ state: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: repo.root.file(state + "/backup/cache"))) ?? [])
                .filter { $0.hasSuffix(".json") }.sorted()
        }
        let first = cacheNames(".stet")
        #expect(first.count == 1)
        // The name such a cache used to have: sha256(repo + "\n" + sha256hex(password file))[:16].
        let passwordHash = SHA256.hash(try #require(repo.root.read("secrets/restic.pw"))).hexString
        // Stet names the repository by its absolute path from its working directory (getcwd).
        let repository = try #require(realpath(repo.root.file("backups/files"), nil).map { path in
            defer { free(path) }
            return String(cString: path)
        })
        let oldName = String(SHA256.hash(Data((repository + "\n" + passwordHash).utf8)).hexString.prefix(16)) + ".json"
        #expect(!first.contains(oldName))
        #expect(!first.contains { $0.contains(passwordHash.prefix(8)) })
        // The key: 32 random bytes, readable by the owner only.
        #expect(repo.root.read(".stet/backup/cache.key")?.count == 32)
        var info = stat()
        #expect(stat(repo.root.file(".stet/backup/cache.key"), &info) == 0 && info.st_mode & 0o777 == 0o600)
        // Another state directory, the same repository and password: another name.
        #expect(try stet("trust", "pin", "--state-dir", "other", environment: ci).status == 0)
        let other = try stet("plan", "--state-dir", "other")
        #expect(other.status == 0, "\(other.combined)")
        let second = cacheNames("other")
        #expect(second.count == 1 && second != first, "\(first) \(second)")
        // Another password in the same file is not answered from the cache.
        try repo.root.write("secrets/restic.pw", "not it\n", mode: 0o600)
        let wrong = try stet("plan")
        #expect(wrong.stdout.contains("does not hold its password"), "\(wrong.combined)")
    }
}

extension BackupTests {
    /// Two new policies on one new repository: both plan `init-repository` and the applier runs
    /// them at once. The one whose `restic init` loses the race finds the repository made and
    /// goes on, instead of failing its init and skipping its backup.
    @Test func twoNewPoliciesOnOneNewRepositoryAreBothBackedUp() throws {
        try repo.root.write("other-data/o.txt", "other\n")
        try repo.root.write("manifests/backup.yaml", Samples.backupPolicy(
            name: "files", repository: "backups/files", passwordFile: "secrets/restic.pw", paths: ["data"])
            + "---\n" + Samples.backupPolicy(
                name: "other", repository: "backups/files", passwordFile: "secrets/restic.pw", paths: ["other-data"]))
        try repo.sign(["alice"])
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        #expect(try snapshotIDs().count == 1)
        #expect(try restic("snapshots", "--json", "--tag", "stet:other").stdout.contains("\"id\""))
    }
}
