import Foundation
import StetTesting
import Testing

/// What `stet apply` prints while long actions run, when its output is not a terminal (a CI
/// log): a line when each action starts and when it ends, and a `still running` line every 10 s,
/// with what the action last reported (restic's percent, files and bytes, read as they stream).
@Suite struct ApplyProgressTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try Binary.run(["trust", "pin"], in: repo.root.path, environment: ci).status == 0)
        try repo.root.write("secrets/restic.pw", "progress test password 41c9\n", mode: 0o600)
        for index in 0..<5 { try repo.root.write("data/file\(index).txt", String(repeating: "line \(index)\n", count: 100)) }
        try repo.root.write("manifests/backup.yaml", Samples.backupPolicy(
            name: "files", repository: "backups/files", passwordFile: "secrets/restic.pw", paths: ["data"]))
        try repo.sign(["alice"])
    }

    @Test func aBackupApplyInCIPrintsAStartAndAnEndLinePerAction() throws {
        let apply = try Binary.run(["apply", "--auto-approve"], in: repo.root.path, environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        for action in ["init-repository", "backup"] {
            let start = try #require(apply.stdout.range(of: "start  BackupPolicy/files:\(action)\n"), "\(apply.stdout)")
            let end = try #require(apply.stdout.range(of: "ok  BackupPolicy/files:\(action)  "), "\(apply.stdout)")
            #expect(start.upperBound <= end.lowerBound)
        }
        #expect(!apply.stdout.contains("still running"))
    }

    /// restic, slowed: it writes a line longer than Stet reads (dropped whole), reports 42 %, and
    /// takes 12 s before the real restic runs. The status line is read as it streams and shown
    /// in the `still running` line.
    @Test func aLongActionPrintsAStillRunningLineWithItsProgress() throws {
        let restic = try which("restic")
        try repo.root.write("bin/restic", """
            #!/bin/sh
            if [ "$3" = backup ]; then
              head -c 70000 /dev/zero | tr '\\0' '{'; echo
              printf '%s\\n' '{"message_type":"status","percent_done":0.42,"total_files":5,"files_done":2,"total_bytes":4096,"bytes_done":1536}'
              sleep 12
            fi
            exec '\(restic)' "$@"

            """, mode: 0o755)
        let path = repo.root.file("bin") + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        var environment = ci
        environment["PATH"] = path
        let apply = try Binary.run(["apply", "--auto-approve"], in: repo.root.path, environment: environment)
        #expect(apply.status == 0, "\(apply.combined)")
        let still = try #require(
            apply.stdout.split(separator: "\n").first { $0.hasPrefix("still running: BackupPolicy/files:backup (") }, "\(apply.stdout)")
        #expect(still.hasSuffix("): 42% · 2 of 5 files · 1.5 KiB of 4.0 KiB"), "\(still)")
        #expect(apply.stdout.contains("ok  BackupPolicy/files:backup  snapshot "), "\(apply.stdout)")
    }
}
