import Foundation
import StetCore
import StetCrypto
import StetManifest
import StetState
import StetTesting

/// `stet-bench release`: verify and parse a 10,000-file release, beside `openssl speed`.
///
/// Targets on a 2-core machine: verify + parse under 0.3 s, peak memory under 150 MB, and
/// SHA-256 throughput at least 0.9 of `openssl speed -evp sha256` on 16 KiB blocks.
enum ReleaseBenchmark {
    static let fileCount = 10_000

    static func run(_ arguments: [String]) throws {
        var repo = RepositoryFixture(root: TemporaryDirectory("stet-bench"))
        try repo.writeTrust(root: (1, ["alice"]), release: (2, ["alice", "bob"]))
        var bytes = 0
        for index in 0..<fileCount {
            let text = manifest(index)
            bytes += text.utf8.count
            try repo.root.write("manifests/\(index / 1000)/r\(index).yaml", text)
        }
        try repo.sign(["alice", "bob"])
        let trust = try TrustPolicy.load(file: repo.trustFile)
        // The fixture's 10,000 new files are written back first: the kernel's flushers would
        // otherwise share the cores with the runs measured.
        sync()
        print("release of \(fileCount) manifest files, \(bytes / 1024) KiB, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print()
        if let flag = arguments.firstIndex(of: "--profile") {
            // For `perf record`: only the verify and the parse, many times over, each timed.
            let rounds = arguments.dropFirst(flag + 1).first.flatMap { Int($0) }.map { min(max($0, 1), 1000) } ?? 20
            try profile(repo: repo, trust: trust, rounds: rounds)
            return
        }

        // Verify + parse, in process: five runs, the median.
        var times: [Double] = []
        var peak = 0
        for _ in 0..<5 {
            Measure.resetPeak()
            let before = Measure.peakResidentBytes()
            var resources = 0
            times.append(try Measure.seconds {
                let outcome = try ReleaseVerifier(directory: repo.manifests, trust: trust, accepted: nil, now: Date()).verify()
                let release = try outcome.result.get()
                resources = try release.desiredState().resourceIDs.count
            })
            precondition(resources == fileCount, "parsed \(resources) resources, expected \(fileCount)")
            peak = max(peak, Measure.peakResidentBytes(), before)
        }
        times.sort()
        let verifyParse = times[2]
        var release: VerifiedRelease?
        let verifyOnly = try Measure.seconds {
            release = try ReleaseVerifier(directory: repo.manifests, trust: trust, accepted: nil, now: Date()).verify().result.get()
        }
        let parseOnly = try Measure.seconds { _ = try release!.desiredState() }
        Measure.row("figure", "Stet", "reference", "ratio / target")
        Measure.row("verify + parse 10,000 files (median of 5)", String(format: "%.3f s", verifyParse), "target 0.3 s",
                    String(format: "%.2f of target", verifyParse / 0.3))
        // Each file is decoded (YAML, schema) as it is verified; what is left is joining them.
        Measure.row("  of which verify (list, signatures, hash + decode)", String(format: "%.3f s", verifyOnly))
        Measure.row("  of which join (names, references, state)", String(format: "%.3f s", parseOnly))
        Measure.row("peak resident memory", "\(peak / 1_048_576) MB", "target 150 MB",
                    String(format: "%.2f of target", Double(peak) / 150 / 1_048_576))

        // What accepting adds: the copy kept in the state directory (each file fsynced, the
        // folder renamed into place); and what status, plan and run pay to read the release in
        // force back from it (state rules on every entry, verification, parsing).
        let store = FileStateStore(root: repo.stateDir)
        let keep = try Measure.seconds { try ReleaseStore(store: store).save(release!) }
        try AcceptedRelease(release!.release, acceptedAt: Date()).save(to: store)
        var readBack = 0
        let inForce = try Measure.seconds {
            readBack = try ReleaseStore(store: store).inForce(trust: trust, now: Date())?.desired.resourceIDs.count ?? 0
        }
        precondition(readBack == fileCount, "read back \(readBack) resources, expected \(fileCount)")
        Measure.row("keep the accepted copy (10,000 files)", String(format: "%.3f s", keep))
        Measure.row("read the release in force back", String(format: "%.3f s", inForce),
                    String(format: "%.3f s from manifests", verifyParse), String(format: "%.2f", inForce / verifyParse))

        // Ed25519 verify: Stet's rate beside `openssl speed ed25519`, one core each.
        let key = try PrivateKey.generate()
        let message = Data(repeating: 7, count: 200)
        let signature = try key.signature(for: message)
        let count = 20_000
        let ed = Measure.seconds {
            for _ in 0..<count { precondition(key.publicKey.isValidSignature(signature, for: message)) }
        }
        let opensslEd = try parseEd25519Verify(Measure.openssl(["speed", "-seconds", "2", "ed25519"]))
        let stetEd = Double(count) / ed
        Measure.row("Ed25519 verify, one core", String(format: "%.0f /s", stetEd), String(format: "%.0f /s openssl", opensslEd),
                    String(format: "%.2f", stetEd / opensslEd))

        // SHA-256 on 16 KiB blocks: in memory, and over the release's files (read + hash).
        let block = Data(repeating: 0x5a, count: 16_384)
        let blocks = 120_000
        let hasher = SHA256()
        let sha = Measure.seconds { for _ in 0..<blocks { hasher.update(block) } }
        _ = hasher.finalize()
        let opensslSHA = try parseSHA256(Measure.openssl(["speed", "-seconds", "2", "-evp", "sha256", "-bytes", "16384"]))
        let stetSHA = Double(blocks * block.count) / sha
        Measure.row("SHA-256, 16 KiB blocks", String(format: "%.0f MB/s", stetSHA / 1e6), String(format: "%.0f MB/s openssl", opensslSHA / 1e6),
                    String(format: "%.2f (target ≥ 0.90)", stetSHA / opensslSHA))
        let big = try repo.root.write("big.bin", Data(repeating: 0x33, count: 256 << 20))
        _ = try SHA256.hash(fileAt: big)  // warm the page cache
        let fileSHA = try Measure.seconds { _ = try SHA256.hash(fileAt: big) }
        let stetFile = Double(256 << 20) / fileSHA
        Measure.row("SHA-256 of a 256 MiB file (read + hash)", String(format: "%.0f MB/s", stetFile / 1e6),
                    String(format: "%.0f MB/s openssl", opensslSHA / 1e6), String(format: "%.2f (target ≥ 0.90)", stetFile / opensslSHA))
    }

    static func profile(repo: RepositoryFixture, trust: TrustPolicy, rounds: Int) throws {
        var release: VerifiedRelease?
        var cpu = Measure.cpuSeconds()
        let verify = try Measure.seconds {
            for _ in 0..<rounds {
                release = try ReleaseVerifier(directory: repo.manifests, trust: trust, accepted: nil, now: Date()).verify().result.get()
            }
        }
        let verifyCPU = Measure.cpuSeconds() - cpu
        cpu = Measure.cpuSeconds()
        let parse = try Measure.seconds { for _ in 0..<rounds { _ = try release!.desiredState() } }
        let parseCPU = Measure.cpuSeconds() - cpu
        // Both, as the figure measures them: each round's release and state freed within it.
        cpu = Measure.cpuSeconds()
        var kept: DesiredState?
        let both = try Measure.seconds {
            for _ in 0..<rounds {
                let verified = try ReleaseVerifier(directory: repo.manifests, trust: trust, accepted: nil, now: Date()).verify().result.get()
                kept = try verified.desiredState()
                kept = nil
            }
        }
        let bothCPU = Measure.cpuSeconds() - cpu
        _ = kept
        Measure.row("verify, mean of \(rounds)", String(format: "%.3f s", verify / Double(rounds)),
                    String(format: "%.3f s of processor", verifyCPU / Double(rounds)))
        Measure.row("join, mean of \(rounds)", String(format: "%.3f s", parse / Double(rounds)),
                    String(format: "%.3f s of processor", parseCPU / Double(rounds)))
        Measure.row("verify + parse, freed, mean of \(rounds)", String(format: "%.3f s", both / Double(rounds)),
                    String(format: "%.3f s of processor", bothCPU / Double(rounds)))
    }

    /// One resource per file, cycling through the four kinds with realistic fields.
    static func manifest(_ index: Int) -> String {
        switch index % 4 {
        case 0: Samples.service(name: "svc-\(index)", replicas: 2, port: 10_000 + index % 50_000)
        case 1: Samples.backup(name: "backup-\(index)")
        case 2: Samples.monitor(name: "monitor-\(index)", port: 10_000 + index % 50_000, notifier: "notifier-3")
        default: Samples.notifier(name: "notifier-\(index)")
        }
    }

    static func parseEd25519Verify(_ output: String) throws -> Double {
        guard let line = output.split(separator: "\n").first(where: { $0.contains("Ed25519") }),
            let value = line.split(separator: " ").last.flatMap({ Double($0) })
        else { throw TestFailure("cannot read `openssl speed ed25519`: \(output)") }
        return value
    }

    static func parseSHA256(_ output: String) throws -> Double {
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("sha256") }),
            let field = line.split(separator: " ").last, let kilo = Double(field.dropLast())
        else { throw TestFailure("cannot read `openssl speed -evp sha256`: \(output)") }
        return kilo * 1000
    }
}
