import Foundation
import StetCore
import StetPlanner
import StetProviders
import StetState
import StetTesting

/// `stet-bench backup`: 200 MB in 2,000 files backed up and restore-tested through Stet and
/// through restic directly, in the same run; then observing and planning 50 policies on 5
/// repositories with a warm cache. Targets: overhead ratios ≤ 1.10; plan under 1 s.
enum BackupBenchmark {
    static func run(_ arguments: [String]) async throws {
        let files = arguments.first.flatMap(Int.init) ?? 2000
        let size = 100_000
        let work = TemporaryDirectory("stet-bench-backup")
        let data = work.file("data")
        var generator = SplitMix(seed: 42)
        for index in 0..<files {
            var bytes = [UInt8](repeating: 0, count: size)
            for offset in stride(from: 0, to: size, by: 8) {
                withUnsafeBytes(of: generator.next()) { word in
                    for byte in 0..<min(8, size - offset) { bytes[offset + byte] = word[byte] }
                }
            }
            try work.write("data/d\(index % 20)/f\(index).bin", Data(bytes))
        }
        try work.write("pw", "benchmark password\n", mode: 0o600)
        let password = work.file("pw")
        let restic = Restic()
        func direct(_ arguments: [String], _ repository: String) throws -> Restic.Output {
            let output = try restic.run(arguments, repository: repository, passwordFile: password, timeout: restic.deadlines.transfer)
            if let failure = Restic.failure(output, repository: repository) { throw failure }
            return output
        }
        print("backup of \(files) files, \(files * size / 1_000_000) MB, restic \(try version()), \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print()
        Measure.row("figure", "Stet", "restic alone", "ratio / target")

        // Warm the page cache so that neither side pays for the first read.
        _ = try StetTesting.run("/bin/sh", ["-c", "cat $(find \(data) -type f) > /dev/null"], timeout: 300)
        let plainRepo = work.file("plain")
        let stetRepo = work.file("stet")
        _ = try direct(["init"], plainRepo)
        _ = try direct(["init"], stetRepo)
        let plainBackup = try Measure.seconds { _ = try direct(["backup", "--json", "--tag", "stet:bench", data], plainRepo) }

        let store = FileStateStore(root: work.file("state"))
        let provider = BackupProvider(store: store, baseDirectory: work.path)
        var desired = DesiredState()
        let policy = BackupPolicy(
            metadata: Metadata(name: "bench"), paths: [data], resticRepository: stetRepo, passwordFile: password,
            every: .seconds(3600), rpo: .seconds(7200), restoreTestEvery: .seconds(86_400))
        desired.backupPolicies["bench"] = policy
        func change(_ action: BackupAction) -> Change {
            Change(resource: ResourceID(.backupPolicy, "bench"), action: .backup(action), cause: .schedule,
                   reason: Reason("bench", "bench"), before: nil, after: nil, disruption: .none, precondition: "")
        }
        var outcome = ActionOutcome.failed("not run")
        let stetBackup = await Measure.secondsAsync { outcome = await provider.perform(change(.backup), desired: desired) }
        guard outcome.ok else { throw TestFailure("Stet's backup failed: \(outcome.error ?? "")") }
        Measure.row("backup \(files * size / 1_000_000) MB", String(format: "%.2f s", stetBackup), String(format: "%.2f s", plainBackup),
                    String(format: "%.2f (target ≤ 1.10)", stetBackup / plainBackup))

        // Restore test: Stet's against restic restore --verify plus sha256sum of the tree.
        let scratch = work.file("scratch")
        let plainRestore = try Measure.seconds {
            _ = try direct(["restore", "latest", "--target", scratch, "--verify"], plainRepo)
            _ = try StetTesting.run("/bin/sh", ["-c", "find \(scratch) -type f -print0 | xargs -0 sha256sum > /dev/null"], timeout: 600)
        }
        try FileManager.default.removeItem(atPath: scratch)
        let stetRestore = await Measure.secondsAsync { outcome = await provider.perform(change(.restoreTest), desired: desired) }
        guard outcome.ok else { throw TestFailure("Stet's restore test failed: \(outcome.error ?? "")") }
        Measure.row("restore test", String(format: "%.2f s", stetRestore), String(format: "%.2f s", plainRestore),
                    String(format: "%.2f (target ≤ 1.10)", stetRestore / plainRestore))

        // 50 policies on 5 repositories: observe (warm cache) and plan.
        var many = DesiredState()
        for repository in 0..<5 {
            let path = work.file("repo\(repository)")
            _ = try direct(["init"], path)
            for index in 0..<10 {
                let name = "p\(repository)-\(index)"
                try work.write("small/\(name)/file", name)
                _ = try direct(["backup", "--tag", "stet:\(name)", work.file("small/\(name)")], path)
                many.backupPolicies[name] = BackupPolicy(
                    metadata: Metadata(name: name), paths: [work.file("small/\(name)")], resticRepository: path, passwordFile: password,
                    every: .seconds(3600), rpo: .seconds(7200), retention: BackupPolicy.Retention(last: 3))
            }
        }
        let cold = try await Measure.secondsAsyncThrowing { _ = try await provider.observe(many, now: Date()) }
        var changes = 0
        let warm = try await Measure.secondsAsyncThrowing {
            let observed = try await provider.observe(many, now: Date())
            changes = Planner().plan(desired: many, observed: observed, release: .init(version: 1, digest: "sha256:1"), now: Date()).changes.count
        }
        Measure.row("observe + plan 50 policies, 5 repos, warm", String(format: "%.0f ms", warm * 1000), "target 1000 ms",
                    String(format: "%.2f of target", warm))
        Measure.row("  the same with a cold cache", String(format: "%.0f ms", cold * 1000), "", "\(changes) changes")
    }

    static func version() throws -> String {
        let output = try StetTesting.run("restic", ["version"])
        return output.stdout.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
    }
}

extension Measure {
    static func secondsAsync(_ body: () async -> Void) async -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        await body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func secondsAsyncThrowing(_ body: () async throws -> Void) async throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try await body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
