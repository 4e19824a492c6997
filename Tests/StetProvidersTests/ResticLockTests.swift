import Foundation
@testable import StetProviders
import StetTesting
import Testing

/// A restic left running by a Stet that was killed holds the repository's lock until it ends
/// (restic is kept from dying with its parent). The next restic Stet starts waits for that lock,
/// a bounded time, instead of failing the action: found by the crash campaign, where the apply
/// after a killed `stet run` failed its `forget` on the lock of the orphaned backup.
@Suite struct ResticLockTests {
    let folder = TemporaryDirectory("stet-restic-lock")

    /// A restic that finds the repository locked its first `locked` runs, then answers.
    func restic(locked: Int) throws -> Restic {
        try folder.write("secret.pw", "lock test password 7c1d\n", mode: 0o600)
        try folder.write("restic", """
            #!/bin/sh
            if [ "$3" = unlock ]; then echo x >> '\(folder.file("unlocks"))'; exit 0; fi
            count=$(cat '\(folder.file("runs"))' 2>/dev/null || echo 0)
            count=$((count + 1))
            echo "$count" > '\(folder.file("runs"))'
            if [ "$count" -le \(locked) ]; then
              echo "unable to create lock in backend: repository is already locked by PID 4242 on host by root (UID 0, GID 0)" >&2
              exit 1
            fi
            echo '[]'
            """, mode: 0o755)
        return Restic(executable: folder.file("restic"))
    }

    func unlocks() -> Int { ((try? String(contentsOfFile: folder.file("unlocks"), encoding: .utf8)) ?? "").split(separator: "\n").count }

    func runs() -> Int { Int((try? String(contentsOfFile: folder.file("runs"), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0 }

    @Test func aLockThatIsReleasedIsWaitedFor() throws {
        let restic = try restic(locked: 2)
        let output = try restic.run(["snapshots", "--json"], repository: "repo", passwordFile: folder.file("secret.pw"), timeout: 30)
        #expect(output.status == 0)
        #expect(Restic.failure(output, repository: "repo") == nil)
        #expect(String(decoding: output.stdout, as: UTF8.self) == "[]\n")
        #expect(runs() == 3)
        // Stale locks were removed once before the first retry.
        #expect(unlocks() == 1)
    }

    @Test func aLockThatStaysFailsAfterTheWait() throws {
        var restic = try restic(locked: 1000)
        restic.lockWait = 2.5
        let started = Date()
        let output = try restic.run(["forget", "--json"], repository: "repo", passwordFile: folder.file("secret.pw"), timeout: 30)
        #expect(Restic.failure(output, repository: "repo")?.kind == .locked)
        #expect(Date().timeIntervalSince(started) < 10)
        #expect((2...4).contains(runs()), "\(runs()) runs")
    }

    @Test func theWaitIsSetByTheEnvironmentWithinBounds() {
        #expect(Restic.lockWaitSetting([:]) == 120)
        #expect(Restic.lockWaitSetting(["STET_RESTIC_LOCK_WAIT": "3"]) == 3)
        #expect(Restic.lockWaitSetting(["STET_RESTIC_LOCK_WAIT": "-5"]) == 0)
        #expect(Restic.lockWaitSetting(["STET_RESTIC_LOCK_WAIT": "1e300"]) == 3600)
        #expect(Restic.lockWaitSetting(["STET_RESTIC_LOCK_WAIT": "nan"]) == 120)
        #expect(Restic.lockWaitSetting(["STET_RESTIC_LOCK_WAIT": "soon"]) == 120)
    }
}
