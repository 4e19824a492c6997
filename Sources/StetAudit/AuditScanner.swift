public import Foundation
import StetCrypto

/// How far a log has been read and checked: the entries so far and the Merkle tree over them.
public struct AuditPosition: Sendable, Equatable {
    /// Entries checked (the next entry's `seq`).
    public var size: Int
    /// Byte offset just after the last checked line.
    public var bytes: Int
    public var tree: MerkleAccumulator
    /// Leaf hash of entry `size - 1`; nil for an empty log.
    public var lastLeaf: Data?
    /// The `seq` of the file's first line: 0, or where a log restarted after damage begins
    /// (`AuditRestart`). Line numbers count from it.
    public var base: Int

    public init(size: Int, bytes: Int, tree: MerkleAccumulator, lastLeaf: Data?, base: Int = 0) {
        self.size = size
        self.bytes = bytes
        self.tree = tree
        self.lastLeaf = lastLeaf
        self.base = base
    }

    /// The 1-based line number, in its file, of entry `size`.
    public var nextLine: Int { size - base + 1 }

    public static let start = AuditPosition(size: 0, bytes: 0, tree: MerkleAccumulator(), lastLeaf: nil)

    /// The `prev` the next entry must carry.
    public var prev: String { lastLeaf?.hexString ?? "" }
}

/// What a scan found.
public struct AuditScan: Sendable {
    /// Everything up to here checked out.
    public var position: AuditPosition
    /// The first line that failed a check, if any; nothing after it was read.
    public var failure: AuditFailure?
    /// Bytes after the last complete line, when the file ends without a newline (and nothing
    /// failed before): a torn write.
    public var tornBytes: Int
    /// The tree's root at each size of `AuditScanner.rootsAt` the scan passed.
    public var roots: [Int: Data] = [:]
}

/// Reads `log.jsonl` from a position to its end, checking every line: Stet's envelope form, the
/// signature by a trusted operator key (when `trust` is given), the payload, `seq`, and `prev`.
/// Signatures and decoding run on all cores; memory stays bounded by one read block whatever
/// the length of the log.
public struct AuditScanner: Sendable {
    /// Nil reads without checking signatures (listing); the chain and the tree are still checked.
    public var trust: AuditTrust?
    public var blockSize = 1 << 20
    /// Threads that check lines (default: one per core).
    public var workers = ProcessInfo.processInfo.activeProcessorCount
    /// Tree sizes whose roots the scan records (to check checkpoints in the same pass).
    public var rootsAt: Set<Int> = []
    /// Stop once the log holds this many entries (where a restart took over), nil: at the end.
    public var stopAt: Int?
    /// Longer lines are not Stet's.
    public static let maximumLineLength = 1 << 20

    public init(trust: AuditTrust?) { self.trust = trust }

    /// One line's result from the parallel stage.
    private struct Checked: Sendable {
        var leaf = Data()
        var seq = 0
        /// `prev` as bytes; nil for the empty `prev` of entry 0, or text that is not 64 hex digits.
        var prevBytes: Data?
        /// `prev` as written, when it is neither empty nor 64 hex digits (for the error message).
        var prevText: String?
        var entry: AuditEntry?
        var failure: (AuditFailure.Check, String)?

        var prevDescription: String { prevBytes?.hexString ?? prevText ?? "" }
    }

    /// One checked line, as a visitor sees it.
    public struct Line {
        /// 1-based line number in its file (`seq + 1` in a log never restarted).
        public let number: Int
        public let entry: AuditEntry
        public let leafHash: Data
        /// The line's bytes, without the newline.
        public let text: Data
        /// The tree including this entry.
        public let tree: MerkleAccumulator
    }

    /// Scans the open file `fd` from `start`. `visit` receives each checked line in order;
    /// returning false stops the scan there.
    public func scan(fd: Int32, from start: AuditPosition, visit: (Line) throws -> Bool) throws -> AuditScan {
        try withoutActuallyEscaping(visit) { try scan(fd: fd, from: start, visitor: $0) }
    }

    /// Scans without visiting: checks only.
    public func scan(fd: Int32, from start: AuditPosition) throws -> AuditScan {
        try scan(fd: fd, from: start, visitor: nil)
    }

    private func scan(fd: Int32, from start: AuditPosition, visitor visit: ((Line) throws -> Bool)?) throws -> AuditScan {
        var position = start
        var offset = start.bytes
        var roots: [Int: Data] = [:]
        if rootsAt.contains(start.size) { roots[start.size] = start.tree.root }
        var pending = Data()
        let workers = max(1, self.workers)
        let pool = VerifierPool()
        func reachedStop() -> Bool { stopAt.map { position.size >= $0 } ?? false }
        while true {
            if reachedStop() { return AuditScan(position: position, failure: nil, tornBytes: 0, roots: roots) }
            let block = try read(fd: fd, at: offset, count: blockSize)
            offset += block.count
            if block.isEmpty {
                return AuditScan(position: position, failure: nil, tornBytes: pending.count, roots: roots)
            }
            var chunk = pending
            chunk.append(block)
            var lines: [Range<Int>] = []
            var lineStart = chunk.startIndex
            chunk.withUnsafeBytes { raw in
                var index = 0
                while let newline = memchr(raw.baseAddress! + index, 0x0A, raw.count - index) {
                    let end = raw.baseAddress!.distance(to: UnsafeRawPointer(newline))
                    lines.append(index..<end)
                    index = end + 1
                }
                lineStart = index
            }
            pending = chunk.subdata(in: lineStart..<chunk.count)
            // The complete lines before an overlong one are checked first: they may be good.
            func overlong() -> AuditScan {
                AuditScan(
                    position: position,
                    failure: AuditFailure(
                        line: position.nextLine, check: .envelope, message: "longer than \(Self.maximumLineLength) bytes"),
                    tornBytes: 0, roots: roots)
            }
            if lines.isEmpty {
                if pending.count > Self.maximumLineLength { return overlong() }
                continue
            }
            let results = check(lines, in: chunk, firstSeq: position.size, workers: workers, decode: visit != nil, pool: pool)
            for (index, result) in results.enumerated() {
                if reachedStop() { return AuditScan(position: position, failure: nil, tornBytes: 0, roots: roots) }
                let lineNumber = position.nextLine
                if let (check, message) = result.failure {
                    return AuditScan(
                        position: position, failure: AuditFailure(line: lineNumber, check: check, message: message),
                        tornBytes: 0, roots: roots)
                }
                if result.seq != position.size {
                    return AuditScan(
                        position: position,
                        failure: AuditFailure(
                            line: lineNumber, check: .sequence,
                            message: "seq is \(result.seq), expected \(position.size) (a line was removed, repeated or moved)"),
                        tornBytes: 0, roots: roots)
                }
                let chained = result.prevBytes.map { $0 == position.lastLeaf } ?? (result.prevText == nil && position.lastLeaf == nil)
                if !chained {
                    return AuditScan(
                        position: position,
                        failure: AuditFailure(
                            line: lineNumber, check: .chain,
                            message: "prev is \"\(result.prevDescription)\", expected \"\(position.prev)\" (the leaf hash of the line before)"),
                        tornBytes: 0, roots: roots)
                }
                position.tree.append(leafHash: result.leaf)
                position.lastLeaf = result.leaf
                position.size += 1
                position.bytes += lines[index].count + 1
                if rootsAt.contains(position.size) { roots[position.size] = position.tree.root }
                if let visit, let entry = result.entry,
                    try !visit(Line(
                        number: lineNumber, entry: entry, leafHash: result.leaf,
                        text: chunk.subdata(in: lines[index]), tree: position.tree))
                {
                    return AuditScan(position: position, failure: nil, tornBytes: 0, roots: roots)
                }
            }
            if pending.count > Self.maximumLineLength {
                if reachedStop() { return AuditScan(position: position, failure: nil, tornBytes: 0, roots: roots) }
                return overlong()
            }
        }
    }

    /// Checks every line of a block on `workers` threads; the results keep the lines' order.
    private func check(
        _ lines: [Range<Int>], in chunk: Data, firstSeq: Int, workers: Int, decode: Bool, pool: VerifierPool
    ) -> [Checked] {
        var results = [Checked](repeating: Checked(), count: lines.count)
        let trust = self.trust
        results.withUnsafeMutableBufferPointer { output in
            nonisolated(unsafe) let output = output
            // More slices than cores, so that a slow slice does not leave a core idle.
            let slices = workers == 1 ? 1 : workers * 8
            let stride = (lines.count + slices - 1) / slices
            DispatchQueue.concurrentPerform(iterations: slices) { worker in
                let decoder = JSONDecoder()
                let hasher = SHA256()
                var verifiers = pool.take()
                defer { pool.give(verifiers) }
                let range = min(lines.count, worker * stride)..<min(lines.count, (worker + 1) * stride)
                chunk.withUnsafeBytes { raw in
                    for index in range {
                        let line = UnsafeRawBufferPointer(rebasing: raw[lines[index]])
                        output[index] = Self.check(
                            line, trust: trust, verifiers: &verifiers, hasher: hasher, decoder: decoder, keepEntry: decode)
                    }
                }
            }
        }
        return results
    }

    /// Sets of verifiers that slices borrow and return, so that each thread's verifiers (and
    /// their OpenSSL library contexts) are made once per scan, not once per slice.
    private final class VerifierPool: @unchecked Sendable {
        private var idle: [Verifiers] = []
        private let lock = NSLock()

        func take() -> Verifiers { lock.withLock { idle.popLast() } ?? Verifiers() }
        func give(_ verifiers: Verifiers) { lock.withLock { idle.append(verifiers) } }
    }

    /// One thread's reusable signature verifiers, by key id.
    private struct Verifiers {
        var byKeyID: [String: PublicKey.Verifier] = [:]

        mutating func isValid(_ parts: AuditLine.Parts, key: PublicKey) -> Bool {
            let message = parts.signedBytes
            if let verifier = byKeyID[parts.keyID] { return verifier.isValidSignature(parts.signature, for: message) }
            guard let made = key.makeVerifier() else { return key.isValidSignature(parts.signature, for: message) }
            byKeyID[parts.keyID] = made
            return made.isValidSignature(parts.signature, for: message)
        }
    }

    private static func check(
        _ line: UnsafeRawBufferPointer, trust: AuditTrust?, verifiers: inout Verifiers, hasher: SHA256, decoder: JSONDecoder,
        keepEntry: Bool
    ) -> Checked {
        var checked = Checked()
        let parts: AuditLine.Parts
        switch AuditLine.parse(line) {
        case .failure(let error):
            checked.failure = (.envelope, error.message)
            return checked
        case .success(let success):
            parts = success
        }
        if let trust {
            guard let key = trust.key(id: parts.keyID) else {
                checked.failure = (.signature, "signed by key \(parts.keyID.prefix(16))…, which is not an operator key of the trust policy")
                return checked
            }
            guard verifiers.isValid(parts, key: key.publicKey) else {
                checked.failure = (.signature, "the signature does not verify under key \(key.name)")
                return checked
            }
        }
        // One meaning only: a payload with a key twice could read differently to another tool.
        do {
            try StrictJSON.checkUniqueKeys(parts.payload)
        } catch {
            checked.failure = (.payload, "not strict JSON: \(error)")
            return checked
        }
        // Checking only, a payload in Stet's own field order needs just its chain fields; a
        // visitor needs the whole entry.
        let fast: (seq: Int, prevBytes: Data?, prevText: String?, keyMatches: Bool)? =
            keepEntry ? nil : parts.payload.withUnsafeBytes { payload in
                guard let fields = AuditEntry.chainFields(payload) else { return nil }
                let prev = payload[fields.prev]
                let prevBytes = prev.count == 64 ? Data(hexDigits: prev) : nil
                let prevText = prevBytes == nil && !prev.isEmpty ? String(decoding: prev, as: UTF8.self) : nil
                return (fields.seq, prevBytes, prevText, payload[fields.keyid].elementsEqual(parts.keyID.utf8))
            }
        if let fast {
            guard fast.keyMatches else {
                checked.failure = (.payload, "actor.keyid is not the signing key")
                return checked
            }
            checked.seq = fast.seq
            checked.prevBytes = fast.prevBytes
            checked.prevText = fast.prevText
        } else {
            let entry: AuditEntry
            do {
                entry = try decoder.decode(AuditEntry.self, from: parts.payload)
            } catch {
                checked.failure = (.payload, "not an audit entry: \(describe(error))")
                return checked
            }
            guard entry.actor.keyid == parts.keyID else {
                checked.failure = (.payload, "actor.keyid \(entry.actor.keyid.prefix(16))… is not the signing key")
                return checked
            }
            checked.seq = entry.seq
            checked.prevBytes = entry.prev.count == 64 ? Data(hexString: entry.prev) : nil
            checked.prevText = checked.prevBytes == nil && !entry.prev.isEmpty ? entry.prev : nil
            if keepEntry { checked.entry = entry }
        }
        checked.leaf = Merkle.leafHash(parts.payload, using: hasher)
        return checked
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        default: return "\(error)"
        }
    }

    private func read(fd: Int32, at offset: Int, count: Int) throws -> Data {
        var data = Data(count: count)
        let n = data.withUnsafeMutableBytes { buffer -> Int in
            while true {
                let n = pread(fd, buffer.baseAddress, count, off_t(offset))
                if n < 0 && errno == EINTR { continue }
                return n
            }
        }
        guard n >= 0 else { throw AuditError.io("read the audit log", errno) }
        data.count = n
        return data
    }
}
