import Foundation
import StetAudit
import StetCrypto
import StetTesting

/// `stet-bench audit [ENTRIES]`: appending with one fsync per entry and with grouped fsyncs,
/// then verifying a long log (default 1,000,000 entries) beside `openssl speed ed25519`.
///
/// Targets on a 2-core machine: grouped append ≥ 20,000 entries/s; verification ≥ 0.8 of
/// openssl's verify rate times the cores; memory during verify flat and under 64 MB.
enum AuditBenchmark {
    static func run(_ arguments: [String]) throws {
        let longLog = arguments.first.flatMap(Int.init) ?? 1_000_000
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let key = try PrivateKey.generate()
        let trust = AuditTrust([(name: "bench", publicKey: key.publicKey)])
        print("audit log, \(cores) cores, state on \(NSTemporaryDirectory())")
        print()
        Measure.row("figure", "Stet", "reference", "ratio / target")

        func open(_ directory: TemporaryDirectory) throws -> AuditLog {
            try AuditLog(
                stateDirectory: directory.path, trust: trust, key: key, host: "bench", via: "daemon", release: .none,
                origin: "stet/bench")
        }
        func record(_ index: Int) -> AuditRecord {
            AuditRecord(
                kind: index % 2 == 0 ? .intent : .result, release: .init(version: 7, digest: "sha256:" + String(repeating: "e3", count: 32)),
                plan: "plan-2026-11-29-0001", change: "c\(index % 50)", resource: "service/web-\(index % 20)",
                action: "start-replica", reason: "replica \(index % 3) of 3 is missing",
                outcome: index % 2 == 0 ? nil : .ok, durationMs: index % 2 == 0 ? nil : 41)
        }

        // One fsync per entry.
        let single = TemporaryDirectory("stet-bench-audit")
        let perEntryCount = 100_000
        let log1 = try open(single)
        let perEntry = try Measure.seconds {
            for index in 0..<perEntryCount { try log1.append(record(index)) }
        }
        try log1.close()
        Measure.row("append, one fsync per entry", String(format: "%.0f /s", Double(perEntryCount) / perEntry),
                    "", String(format: "%.1f s for %d", perEntry, perEntryCount))

        // Grouped: 256 entries per fsync.
        let grouped = TemporaryDirectory("stet-bench-audit")
        let log2 = try open(grouped)
        let group = 256
        let groupedTime = try Measure.seconds {
            var index = 0
            while index < perEntryCount {
                try log2.append((index..<min(perEntryCount, index + group)).map(record))
                index += group
            }
        }
        try log2.close()
        let groupedRate = Double(perEntryCount) / groupedTime
        Measure.row("append, \(group) entries per fsync", String(format: "%.0f /s", groupedRate), "target 20000 /s",
                    String(format: "%.2f of target", groupedRate / 20_000))

        // A long log to verify, written in large groups.
        let long = TemporaryDirectory("stet-bench-audit")
        let log3 = try open(long)
        var written = 0
        while written < longLog {
            try log3.append((written..<min(longLog, written + 4096)).map(record))
            written += 4096
        }
        try log3.close()
        let size = (try? FileManager.default.attributesOfItem(atPath: long.path + "/audit/log.jsonl")[.size] as? Int) ?? 0

        let opensslVerify = try ReleaseBenchmark.parseEd25519Verify(Measure.openssl(["speed", "-seconds", "3", "ed25519"]))
        let reference = opensslVerify * Double(cores)
        // Memory: the shorter log first, then the long one, each with the peak reset.
        let shortPeak = try verifyPeak(grouped, trust: trust).peak
        let (longPeak, verifyTime, report, cpu) = try verifyPeak(long, trust: trust)
        precondition(report.passed && report.size == longLog, "the benchmark log must verify")
        let rate = Double(longLog) / verifyTime
        Measure.row("verify \(longLog) entries (\(size >> 20) MiB)", String(format: "%.0f /s", rate),
                    String(format: "%.0f /s openssl×%d", reference, cores),
                    String(format: "%.2f (target ≥ 0.80)", rate / reference))
        Measure.row("  wall time, cores busy", String(format: "%.1f s", verifyTime), String(format: "%.2f of %d cores", cpu / verifyTime, cores))
        Measure.row("peak memory verifying \(perEntryCount) entries", "\(shortPeak >> 20) MB", "target 64 MB")
        Measure.row("peak memory verifying \(longLog) entries", "\(longPeak >> 20) MB", "target 64 MB",
                    String(format: "%.2f of target", Double(longPeak) / Double(64 << 20)))
    }

    /// Verifies the log in `directory`; returns the peak resident memory during the run.
    static func verifyPeak(_ directory: TemporaryDirectory, trust: AuditTrust) throws
        -> (peak: Int, seconds: Double, report: AuditVerification.Report, cpu: Double)
    {
        Measure.resetPeak()
        var report: AuditVerification.Report?
        let cpu = Measure.cpuSeconds()
        let seconds = try Measure.seconds {
            report = try AuditVerification(trust: trust).verify(stateDirectory: directory.path, checkpoints: [])
        }
        return (Measure.peakResidentBytes(), seconds, report!, Measure.cpuSeconds() - cpu)
    }
}
