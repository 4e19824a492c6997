public import Foundation
import StetCore
import StetCrypto
import StetState

/// One place where the log was restarted after damage. When a writer finds a complete line that
/// fails a check, it keeps the whole damaged file as `audit/damaged/log-<time>.jsonl` (never
/// deleted) and starts `log.jsonl` again with a `recovery` entry (action
/// `start-after-damage`) whose `seq` follows the last good entry and whose `prev` is that
/// entry's leaf hash: the chain and the Merkle tree run on across the boundary, and `time`
/// names the damaged file. So the log is a chain of segments: each restart names the one
/// before it, back to the first.
public struct AuditRestart: Sendable {
    /// The `recovery` entry that begins the later segment.
    public let entry: AuditEntry
    /// The damaged segment it names (a path; entries `0..<entry.seq` that the restart kept
    /// are its first lines after the segments before it).
    public let damagedPath: String
}

/// The log as a chain of segments: finding them, and scanning the whole history.
enum AuditSegments {
    static let damagedFolder = AuditLog.folder + "/damaged"
    /// The action of the entry that starts a segment after damage.
    static let restartAction = "start-after-damage"
    /// More restarts than this are not followed (each one was a damaged log).
    static let maximumRestarts = 10_000

    /// `audit/damaged/log-20261130T081200.123Z.jsonl` for a restart written at `time`.
    static func damagedKey(time: String) -> String {
        damagedFolder + "/log-" + time.filter { $0 != "-" && $0 != ":" } + ".jsonl"
    }

    /// What begins a log file.
    enum FirstLine {
        /// No complete line.
        case none
        /// A line that is not a valid entry (the scan says why).
        case damaged
        /// An entry that is not a restart.
        case entry
        /// A restart entry.
        case restart(AuditEntry)
    }

    /// The entry that begins the file open at `fd` when it is a restart signed by an operator
    /// key of `trust` (nil: any signature, for listing); nil for anything else (a first segment,
    /// an empty file, a first line that fails, which the scan reports).
    static func restart(fd: Int32, trust: AuditTrust?) throws -> AuditEntry? {
        if case .restart(let entry) = try firstLine(fd: fd, trust: trust) { return entry }
        return nil
    }

    /// The first line of the file open at `fd`, checked with `trust` (nil: any signature).
    static func firstLine(fd: Int32, trust: AuditTrust?) throws -> FirstLine {
        var buffer = Data(count: AuditScanner.maximumLineLength + 1)
        let n = buffer.withUnsafeMutableBytes { raw -> Int in
            while true {
                let n = pread(fd, raw.baseAddress, raw.count, 0)
                if n < 0 && errno == EINTR { continue }
                return n
            }
        }
        guard n >= 0 else { throw AuditError.io("read the audit log", errno) }
        buffer.count = n
        guard let newline = buffer.firstIndex(of: 0x0A) else { return .none }
        let parts: AuditLine.Parts? = buffer[..<newline].withUnsafeBytes { raw in
            if case .success(let parts) = AuditLine.parse(raw) { return parts }
            return nil
        }
        guard let parts,
            trust.map({ trust in
                trust.key(id: parts.keyID).map { $0.publicKey.isValidSignature(parts.signature, for: parts.signedBytes) } ?? false
            }) ?? true,
            let entry = try? AuditEntry.decode(payload: parts.payload)
        else { return .damaged }
        guard entry.kind == .recovery, entry.action == restartAction, RFC3339.parse(entry.time) != nil else { return .entry }
        return .restart(entry)
    }

    /// The history before the file open at `fd`, scanned.
    struct Before {
        /// Where the file begins: its first entry's `seq` (`base`), the tree and the last leaf
        /// before it; `bytes` is 0.
        var position: AuditPosition
        /// Oldest first.
        var restarts: [AuditRestart]
        var roots: [Int: Data]
        /// The first thing in the earlier segments that fails, if any: then `position` is not
        /// where the file begins.
        var failure: AuditFailure?
        /// `visit` returned false in an earlier segment.
        var stopped = false
    }

    /// Follows the restarts from the file open at `fd` back to the first segment and scans
    /// every earlier segment up to where the next one begins, checking its lines (with
    /// `trust`), that it reaches that entry, and that the restart's `prev` is its last leaf.
    static func before(
        fd: Int32, store: FileStateStore, trust: AuditTrust?, rootsAt: Set<Int> = [],
        visit: ((AuditScanner.Line) throws -> Bool)? = nil
    ) throws -> Before {
        var chain: [(restart: AuditRestart, fd: Int32)] = []
        defer { for link in chain { close(link.fd) } }
        var current = fd
        var roots: [Int: Data] = rootsAt.contains(0) ? [0: Merkle.emptyRoot] : [:]
        func failed(_ line: Int, _ check: AuditFailure.Check, _ message: String) -> Before {
            Before(position: .start, restarts: chain.reversed().map(\.restart), roots: roots,
                   failure: AuditFailure(line: line, check: check, message: message))
        }
        while let entry = try restart(fd: current, trust: trust) {
            let key = damagedKey(time: entry.time)
            let path = store.path(key)
            if let later = chain.last?.restart.entry, !(entry.seq <= later.seq && entry.time < later.time) {
                return failed(1, .chain, "the restart at \(later.time) names \(path), which restarts at \(entry.time) entry \(entry.seq): not earlier")
            }
            guard chain.count < maximumRestarts else {
                return failed(1, .chain, "more than \(maximumRestarts) restarts after damage; the earliest are not followed")
            }
            guard let next = try store.open(key, flags: O_RDONLY) else {
                return failed(1, .chain, "the log restarted after damage at \(entry.time); its earlier entries should be in \(path), which is missing")
            }
            chain.append((AuditRestart(entry: entry, damagedPath: path), next))
            current = next
        }
        var position = AuditPosition.start
        var scanner = AuditScanner(trust: trust)
        scanner.rootsAt = rootsAt
        var stopped = false
        for link in chain.reversed() {
            let restart = link.restart
            scanner.stopAt = restart.entry.seq
            let scan: AuditScan
            if let visit {
                scan = try scanner.scan(fd: link.fd, from: position) { line in
                    let more = try visit(line)
                    stopped = !more
                    return more
                }
            } else {
                scan = try scanner.scan(fd: link.fd, from: position)
            }
            roots.merge(scan.roots) { $1 }
            if stopped { return Before(position: scan.position, restarts: [], roots: roots, failure: nil, stopped: true) }
            if let failure = scan.failure {
                return failed(failure.line, failure.check, "in \(restart.damagedPath), before the restart at \(restart.entry.time): \(failure.message)")
            }
            guard scan.position.size == restart.entry.seq else {
                return failed(
                    scan.position.size - scan.position.base + 1, .truncated,
                    "\(restart.damagedPath) holds \(scan.position.size) good entries, but the restart at \(restart.entry.time) "
                        + "continues from entry \(restart.entry.seq)")
            }
            guard scan.position.prev == restart.entry.prev else {
                return failed(
                    1, .chain,
                    "the restart at \(restart.entry.time) has prev \"\(restart.entry.prev)\", but entry \(restart.entry.seq - 1) of "
                        + "\(restart.damagedPath) has leaf hash \"\(scan.position.prev)\"")
            }
            position = scan.position
            position.bytes = 0
            position.base = restart.entry.seq
        }
        return Before(position: position, restarts: chain.reversed().map(\.restart), roots: roots, failure: nil)
    }

    /// Scans the whole history: the earlier segments, then the file open at `fd` from where it
    /// begins. The result's failure names the first line that fails anywhere.
    static func scanAll(
        fd: Int32, store: FileStateStore, trust: AuditTrust?, rootsAt: Set<Int> = [],
        visit: ((AuditScanner.Line) throws -> Bool)? = nil
    ) throws -> (scan: AuditScan, restarts: [AuditRestart]) {
        let before = try Self.before(fd: fd, store: store, trust: trust, rootsAt: rootsAt, visit: visit)
        if before.failure != nil || before.stopped {
            return (AuditScan(position: before.position, failure: before.failure, tornBytes: 0, roots: before.roots), before.restarts)
        }
        var scanner = AuditScanner(trust: trust)
        scanner.rootsAt = rootsAt
        var scan = try visit.map { try scanner.scan(fd: fd, from: before.position, visit: $0) }
            ?? scanner.scan(fd: fd, from: before.position)
        scan.roots.merge(before.roots) { current, _ in current }
        return (scan, before.restarts)
    }
}

extension AuditScanner {
    /// Scans the whole history of the log open at `fd` in `stateDirectory`: every segment kept
    /// after damage up to where the next one begins, then the file itself (`AuditRestart`).
    /// Checks signatures when `trust` is set, the chain and the tree either way.
    public func scanHistory(fd: Int32, stateDirectory: String, visit: ((Line) throws -> Bool)? = nil) throws
        -> (scan: AuditScan, restarts: [AuditRestart])
    {
        try AuditSegments.scanAll(fd: fd, store: FileStateStore(root: stateDirectory), trust: trust, rootsAt: rootsAt, visit: visit)
    }
}
