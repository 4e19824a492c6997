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

    public init(size: Int, bytes: Int, tree: MerkleAccumulator, lastLeaf: Data?) {
        self.size = size
        self.bytes = bytes
        self.tree = tree
        self.lastLeaf = lastLeaf
    }

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
}

/// Reads `log.jsonl` from a position to its end, checking every line: Stet's envelope form, the
/// signature by a trusted operator key (when `trust` is given), the payload, `seq`, and `prev`.
/// Signatures and decoding run on all cores; memory stays bounded by one read block whatever
/// the length of the log.
public struct AuditScanner: Sendable {
    /// Nil reads without checking signatures (listing); the chain and the tree are still checked.
    public var trust: AuditTrust?
    public var blockSize = 4 << 20
    /// Longer lines are not Stet's.
    public static let maximumLineLength = 1 << 20

    public init(trust: AuditTrust?) { self.trust = trust }

    /// One line's result from the parallel stage.
    private struct Checked: Sendable {
        var leaf = Data()
        var seq = 0
        var prev = ""
        var entry: AuditEntry?
        var failure: (AuditFailure.Check, String)?
    }

    /// One checked line, as a visitor sees it.
    public struct Line {
        /// 1-based line number (`seq + 1`).
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
        var pending = Data()
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
        while true {
            let block = try read(fd: fd, at: offset, count: blockSize)
            offset += block.count
            if block.isEmpty {
                return AuditScan(position: position, failure: nil, tornBytes: pending.count)
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
            if pending.count > Self.maximumLineLength {
                return AuditScan(
                    position: position,
                    failure: AuditFailure(
                        line: position.size + lines.count + 1, check: .envelope,
                        message: "longer than \(Self.maximumLineLength) bytes"),
                    tornBytes: 0)
            }
            if lines.isEmpty { continue }
            let results = check(lines, in: chunk, firstSeq: position.size, workers: workers, decode: visit != nil)
            for (index, result) in results.enumerated() {
                let lineNumber = position.size + 1
                if let (check, message) = result.failure {
                    return AuditScan(
                        position: position, failure: AuditFailure(line: lineNumber, check: check, message: message),
                        tornBytes: 0)
                }
                if result.seq != position.size {
                    return AuditScan(
                        position: position,
                        failure: AuditFailure(
                            line: lineNumber, check: .sequence,
                            message: "seq is \(result.seq), expected \(position.size) (a line was removed, repeated or moved)"),
                        tornBytes: 0)
                }
                if result.prev != position.prev {
                    return AuditScan(
                        position: position,
                        failure: AuditFailure(
                            line: lineNumber, check: .chain,
                            message: "prev is \"\(result.prev)\", expected \"\(position.prev)\" (the leaf hash of the line before)"),
                        tornBytes: 0)
                }
                position.tree.append(leafHash: result.leaf)
                position.lastLeaf = result.leaf
                position.size += 1
                position.bytes += lines[index].count + 1
                if let visit, let entry = result.entry,
                    try !visit(Line(
                        number: lineNumber, entry: entry, leafHash: result.leaf,
                        text: chunk.subdata(in: lines[index]), tree: position.tree))
                {
                    return AuditScan(position: position, failure: nil, tornBytes: 0)
                }
            }
        }
    }

    /// Checks every line of a block on `workers` threads; the results keep the lines' order.
    private func check(_ lines: [Range<Int>], in chunk: Data, firstSeq: Int, workers: Int, decode: Bool) -> [Checked] {
        var results = [Checked](repeating: Checked(), count: lines.count)
        let trust = self.trust
        results.withUnsafeMutableBufferPointer { output in
            nonisolated(unsafe) let output = output
            let stride = (lines.count + workers - 1) / workers
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let decoder = JSONDecoder()
                let range = min(lines.count, worker * stride)..<min(lines.count, (worker + 1) * stride)
                chunk.withUnsafeBytes { raw in
                    for index in range {
                        let line = UnsafeRawBufferPointer(rebasing: raw[lines[index]])
                        output[index] = Self.check(line, trust: trust, decoder: decoder, keepEntry: decode)
                    }
                }
            }
        }
        return results
    }

    private static func check(_ line: UnsafeRawBufferPointer, trust: AuditTrust?, decoder: JSONDecoder, keepEntry: Bool)
        -> Checked
    {
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
            guard key.publicKey.isValidSignature(parts.signature, for: parts.signedBytes) else {
                checked.failure = (.signature, "the signature does not verify under key \(key.name)")
                return checked
            }
        }
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
        checked.leaf = Merkle.leafHash(parts.payload)
        checked.seq = entry.seq
        checked.prev = entry.prev
        if keepEntry { checked.entry = entry }
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
