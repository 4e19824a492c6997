public import Foundation
public import StetCrypto

/// RFC 6962 (and RFC 9162) Merkle tree hashing: leaf = SHA-256(0x00 ‖ data), node =
/// SHA-256(0x01 ‖ left ‖ right), the empty tree = SHA-256(""). Hashes are 32-byte `Data`.
public enum Merkle {
    public static let hashSize = 32
    private static let leafPrefix = Data([0])
    private static let nodePrefix = Data([1])

    public static func leafHash(_ data: some DataProtocol) -> Data { leafHash(data, using: SHA256()) }

    /// The leaf hash, computed with `hasher` (reset first), for callers that hash many leaves.
    public static func leafHash(_ data: some DataProtocol, using hasher: SHA256) -> Data {
        hasher.reset()
        hasher.update(leafPrefix)
        hasher.update(data)
        return hasher.finalize()
    }

    public static func nodeHash(_ left: Data, _ right: Data) -> Data {
        let hasher = SHA256()
        hasher.update(nodePrefix)
        hasher.update(left)
        hasher.update(right)
        return hasher.finalize()
    }

    public static let emptyRoot = SHA256.hash(Data())

    /// The largest power of two strictly below `n` (n ≥ 2): RFC 6962's split point `k`.
    static func split(_ n: Int) -> Int {
        precondition(n >= 2)
        return 1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }
}

/// A Merkle tree kept incrementally: one hash per set bit of the size (the roots of the
/// perfect subtrees the leaves form so far), so memory grows with log n, not n.
public struct MerkleAccumulator: Sendable, Equatable {
    public private(set) var size: Int = 0
    /// Roots of the perfect subtrees, largest (leftmost) first.
    public private(set) var peaks: [Data] = []

    public init() {}

    /// Resumes a tree from its size and peaks (as `peaks` returned them). Nil when the count of
    /// peaks does not match the size or a hash is not 32 bytes.
    public init?(size: Int, peaks: [Data]) {
        guard size >= 0, peaks.count == size.nonzeroBitCount, peaks.allSatisfy({ $0.count == Merkle.hashSize }) else {
            return nil
        }
        self.size = size
        self.peaks = peaks
    }

    public mutating func append(leafHash: Data) {
        var hash = leafHash
        var carry = size
        // Each trailing one bit of the old size is a perfect subtree the new leaf completes.
        while carry & 1 == 1 {
            hash = Merkle.nodeHash(peaks.removeLast(), hash)
            carry >>= 1
        }
        peaks.append(hash)
        size += 1
    }

    /// The root of the tree so far (RFC 6962 MTH): the peaks folded right to left.
    public var root: Data {
        guard var hash = peaks.last else { return Merkle.emptyRoot }
        for peak in peaks.dropLast().reversed() { hash = Merkle.nodeHash(peak, hash) }
        return hash
    }
}

/// Which subtrees, as leaf ranges, make up RFC 6962 proofs. A proof is the list of the hashes
/// of these ranges, in this order; the ranges never overlap, so one pass over the leaves can
/// compute all of them (`MerkleProofBuilder`).
public enum MerkleProofShape {
    /// RFC 6962 PATH(m, D[0:n]): the audit path of leaf `index` in a tree of `size` leaves.
    public static func inclusion(index: Int, size: Int) -> [Range<Int>] {
        precondition(index >= 0 && index < size)
        var ranges: [Range<Int>] = []
        path(index, 0..<size, into: &ranges)
        return ranges
    }

    private static func path(_ m: Int, _ range: Range<Int>, into ranges: inout [Range<Int>]) {
        let n = range.count
        guard n > 1 else { return }
        let k = Merkle.split(n)
        if m < k {
            path(m, range.lowerBound..<range.lowerBound + k, into: &ranges)
            ranges.append(range.lowerBound + k..<range.upperBound)
        } else {
            path(m - k, range.lowerBound + k..<range.upperBound, into: &ranges)
            ranges.append(range.lowerBound..<range.lowerBound + k)
        }
    }

    /// RFC 6962 PROOF(m, D[0:n]): the consistency proof from a tree of `oldSize` leaves to one
    /// of `newSize`. Empty when the sizes are equal.
    public static func consistency(from oldSize: Int, to newSize: Int) -> [Range<Int>] {
        precondition(oldSize > 0 && oldSize <= newSize)
        var ranges: [Range<Int>] = []
        subproof(oldSize, 0..<newSize, complete: true, into: &ranges)
        return ranges
    }

    private static func subproof(_ m: Int, _ range: Range<Int>, complete: Bool, into ranges: inout [Range<Int>]) {
        let n = range.count
        if m == n {
            if !complete { ranges.append(range) }
            return
        }
        let k = Merkle.split(n)
        if m <= k {
            subproof(m, range.lowerBound..<range.lowerBound + k, complete: complete, into: &ranges)
            ranges.append(range.lowerBound + k..<range.upperBound)
        } else {
            subproof(m - k, range.lowerBound + k..<range.upperBound, complete: false, into: &ranges)
            ranges.append(range.lowerBound..<range.lowerBound + k)
        }
    }
}

/// Computes the hashes of a proof's ranges from the leaf hashes fed in order, keeping one
/// accumulator for the range being filled: memory stays O(log n) however long the log.
public struct MerkleProofBuilder {
    private let ranges: [Range<Int>]
    /// Range indexes sorted by where they start.
    private let order: [Int]
    private var position = 0
    private var next = 0
    private var current = MerkleAccumulator()
    private var hashes: [Data?]

    public init(ranges: [Range<Int>]) {
        self.ranges = ranges
        order = ranges.indices.sorted { ranges[$0].lowerBound < ranges[$1].lowerBound }
        hashes = Array(repeating: nil, count: ranges.count)
    }

    /// The last leaf any range needs: leaves after it may be skipped.
    public var needsLeaves: Int { ranges.map(\.upperBound).max() ?? 0 }

    public mutating func add(leafHash: Data) {
        defer { position += 1 }
        guard next < order.count else { return }
        let range = ranges[order[next]]
        guard range.contains(position) else { return }
        current.append(leafHash: leafHash)
        if position == range.upperBound - 1 {
            hashes[order[next]] = current.root
            current = MerkleAccumulator()
            next += 1
        }
    }

    /// The proof, once every needed leaf has been added; nil before.
    public var proof: [Data]? {
        let done = hashes.compactMap { $0 }
        return done.count == hashes.count ? done : nil
    }
}

/// Checks RFC 9162 proofs (sections 2.1.3.2 and 2.1.4.2). Every hash must be 32 bytes. Sizes
/// and indexes are unsigned 64-bit, as in other implementations' proofs.
public enum MerkleVerifier {
    public static func verifyInclusion(leafHash: Data, index: UInt64, size: UInt64, proof: [Data], root: Data) -> Bool {
        guard index < size, leafHash.count == Merkle.hashSize, root.count == Merkle.hashSize,
            proof.allSatisfy({ $0.count == Merkle.hashSize })
        else { return false }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in proof {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                r = Merkle.nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = Merkle.nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    public static func verifyConsistency(oldSize: UInt64, newSize: UInt64, oldRoot: Data, newRoot: Data, proof: [Data]) -> Bool {
        guard oldSize > 0, oldSize <= newSize else { return false }
        // Equal sizes need no hashing: the proof is empty and the roots the same bytes.
        if oldSize == newSize { return proof.isEmpty && oldRoot == newRoot }
        guard oldRoot.count == Merkle.hashSize, newRoot.count == Merkle.hashSize,
            proof.allSatisfy({ $0.count == Merkle.hashSize })
        else { return false }
        guard !proof.isEmpty else { return false }
        var path = proof
        // A perfect old tree is itself the first node of the path.
        if oldSize.nonzeroBitCount == 1 { path.insert(oldRoot, at: 0) }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                fr = Merkle.nodeHash(c, fr)
                sr = Merkle.nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = Merkle.nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == oldRoot && sr == newRoot && sn == 0
    }
}
