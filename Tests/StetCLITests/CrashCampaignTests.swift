import Foundation
import StetTesting
import Testing

/// `scripts/crash-campaign` at small scale: `stet apply` and `stet run` killed with SIGKILL at
/// ten seeded random moments, each while it has work (replicas to start, a new spec to roll
/// out, a backup repository to make); after each kill a restart converges, the audit log
/// verifies and every intent has its result or an `interrupted` one. A fixed seed, so a failure
/// here is the same run again; by hand, `scripts/crash-campaign 100 SEED` with any seed.
@Suite struct CrashCampaignTests {
    @Test func tenKillsAtRandomMomentsEachConverge() throws {
        let seed = 11
        let work = TemporaryDirectory("stet-crash")
        // Whatever happens to the script, nothing it started outlives the test.
        defer { _ = try? Binary.run(["down", "--lock-timeout", "30"], in: work.path, environment: ["STET_KEY": "examples/keys/example-operator.key"]) }
        let output = try StetTesting.run(
            Binary.packageRoot + "/scripts/crash-campaign", ["10", String(seed)], in: Binary.packageRoot,
            environment: ["STET": Binary.stet, "STET_CRASH_PORT": "19480", "STET_CRASH_WORK": work.path], timeout: 600)
        #expect(output.status == 0, "seed \(seed)\n\(output.stdout)\n\(output.stderr.suffix(3000))")
        let runs = output.stdout.split(separator: "\n").filter { $0.contains("converged, audit verified, every intent has its result") }
        #expect(runs.count == 10, "seed \(seed)\n\(output.stdout)")
        #expect(output.stdout.contains("crash campaign: 10 runs (seed \(seed)), ") && output.stdout.contains("killed, all converged"),
                "\(output.stdout)")
        print(output.stdout.split(separator: "\n").last ?? "")
    }
}
