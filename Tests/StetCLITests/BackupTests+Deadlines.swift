import Foundation
import StetProviders
import StetTesting
import Testing

/// A repository that accepts connections and never answers (a REST server that hung): restic
/// waits on it for ever unless Stet stops it.
extension BackupTests {
    /// The policy `files`, on a REST repository served by `listener`.
    func hungPolicy(_ listener: SilentListener, extra: String = "") throws {
        try repo.root.write("manifests/backup.yaml", Samples.backupPolicy(
            name: "files", repository: "\"rest:http://127.0.0.1:\(listener.port)/\"", passwordFile: "secrets/restic.pw", paths: ["data"]))
        if !extra.isEmpty { try repo.root.write("manifests/extra.yaml", extra) }
        try repo.sign(["alice"])
    }

    /// restic processes working on the repository of `listener`.
    static func resticRuns(_ listener: SilentListener) -> [Int32] {
        let marker = "rest:http://127.0.0.1:\(listener.port)/"
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> Int32? in
            guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains("restic") && line.contains(marker) ? pid : nil
        }
    }

    /// `status` and `plan` answer, within a bound, that the repository is not answering (on
    /// today's main both hang for as long as the listener lives).
    @Test func statusAndPlanSayARepositoryIsNotAnsweringInsteadOfHanging() throws {
        let listener = try SilentListener()
        defer { listener.stop() }
        try hungPolicy(listener)
        // The release in force is what status shows.
        #expect(try stet("verify", "--accept", environment: ci).status == 0)
        // Both at once: each waits for restic's deadline for looking (30 s), not for ever.
        let status = try BackgroundProcess(Binary.stet, ["status"], in: repo.root.path)
        let plan = try BackgroundProcess(Binary.stet, ["plan"], in: repo.root.path)
        defer {
            status.stop(SIGKILL, timeout: 5)
            plan.stop(SIGKILL, timeout: 5)
        }
        #expect(eventually(timeout: 90, interval: 0.2) { !status.isRunning && !plan.isRunning }, "status or plan still hangs")
        #expect(status.stop() == 3, "\(status.output)")
        #expect(status.output.contains("repository not answering"), "\(status.output)")
        #expect(plan.stop() == 0, "\(plan.output)")
        #expect(plan.output.contains("repository not answering"), "\(plan.output)")
        // restic was stopped at its deadline, with everything it started.
        #expect(eventually(timeout: 10) { Self.resticRuns(listener).isEmpty })
    }

    /// `stet run` with a backup stuck on a repository that never answers: a replica killed
    /// meanwhile is replaced while restic still waits, and SIGTERM stops the daemon, restic
    /// included, within a bound. On today's main the pass waits on restic for good: the replica
    /// stays dead and SIGTERM is never acted on.
    @Test func aHungRepositoryNeitherDelaysHealingNorKeepsRunFromStopping() throws {
        let listener = try SilentListener()
        defer { listener.stop() }
        try hungPolicy(listener, extra: Samples.liveService(name: "beside", replicas: 1, port: 18740))
        let run = try BackgroundProcess(Binary.stet, ["run", "--interval", "0.5"], in: repo.root.path, environment: ci)
        defer {
            run.stop(SIGKILL, timeout: 5)
            for pid in Self.resticRuns(listener) { kill(pid, SIGKILL) }
            if let replica = LoopReactionTests.replica(repo.stateDir, "beside", 0) {
                kill(-replica.pid, SIGKILL)
                kill(replica.pid, SIGKILL)
            }
        }
        #expect(eventually { LoopReactionTests.answers(18740) }, "\(run.output)")
        // The backup pass is waiting on the repository.
        #expect(eventually { !Self.resticRuns(listener).isEmpty }, "\(run.output)")
        let before = try #require(LoopReactionTests.replica(repo.stateDir, "beside", 0))
        let waiting = Set(Self.resticRuns(listener))
        kill(before.pid, SIGKILL)
        // Replaced while that same restic still waits (its deadline is 30 s away).
        #expect(eventually(timeout: 10) { LoopReactionTests.replaced(repo.stateDir, "beside", 0, before: before, port: 18740) }, "\(run.output)")
        #expect(!waiting.isDisjoint(with: Self.resticRuns(listener)), "restic ended before the replica was replaced")
        // SIGTERM: the daemon stops restic and exits 0 (not killed by `stop` after its timeout).
        #expect(run.stop(SIGTERM, timeout: 40) == 0, "\(run.output)")
        #expect(Self.resticRuns(listener).isEmpty)
        _ = try stet("down", environment: ci)
        #expect(eventually { !LoopReactionTests.answers(18740) })
    }
}
