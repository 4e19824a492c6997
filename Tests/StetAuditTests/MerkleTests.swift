import Foundation
import StetAudit
import StetCrypto
import Testing

/// RFC 6962 hashing and proofs, against the transparency-dev vectors and a recursive reference.
@Suite struct MerkleTests {
    static let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Vectors/merkle").standardized.path

    struct InclusionVector: Decodable {
        let leafIdx: UInt64
        let treeSize: UInt64
        let root: String?
        let leafHash: String?
        let proof: [String]?
        let desc: String
        let wantErr: Bool
    }

    struct ConsistencyVector: Decodable {
        let size1: UInt64
        let size2: UInt64
        let root1: String?
        let root2: String?
        let proof: [String]?
        let desc: String
        let wantErr: Bool
    }

    static func files(_ folder: String) -> [String] {
        let root = vectors + "/" + folder
        let names = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { root + "/" + $0 }
    }

    static func decode(_ text: String?) -> Data { text.flatMap { Data(base64Encoded: $0) } ?? Data() }

    @Test func inclusionVectors() throws {
        let files = Self.files("inclusion")
        #expect(files.count > 50)
        var accepted = 0
        for file in files {
            let vector: InclusionVector
            do {
                vector = try JSONDecoder().decode(InclusionVector.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
            } catch {
                Issue.record("\(file): \(error)")
                continue
            }
            let ok = MerkleVerifier.verifyInclusion(
                leafHash: Self.decode(vector.leafHash), index: vector.leafIdx, size: vector.treeSize,
                proof: (vector.proof ?? []).map { Self.decode($0) }, root: Self.decode(vector.root))
            #expect(ok == !vector.wantErr, "\(file): \(vector.desc)")
            if ok { accepted += 1 }
        }
        #expect(accepted > 0)
    }

    @Test func consistencyVectors() throws {
        let files = Self.files("consistency")
        #expect(files.count > 50)
        for file in files {
            let vector = try JSONDecoder().decode(ConsistencyVector.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
            let ok = MerkleVerifier.verifyConsistency(
                oldSize: vector.size1, newSize: vector.size2, oldRoot: Self.decode(vector.root1),
                newRoot: Self.decode(vector.root2), proof: (vector.proof ?? []).map { Self.decode($0) })
            #expect(ok == !vector.wantErr, "\(file): \(vector.desc)")
        }
    }

    /// RFC 6962 MTH, written straight from the definition.
    static func referenceRoot(_ leaves: ArraySlice<Data>) -> Data {
        if leaves.isEmpty { return SHA256.hash(Data()) }
        if leaves.count == 1 { return leaves.first! }
        var k = 1
        while k * 2 < leaves.count { k *= 2 }
        return Merkle.nodeHash(
            referenceRoot(leaves.prefix(k)), referenceRoot(leaves.dropFirst(k)))
    }

    static let leaves = (0..<70).map { Merkle.leafHash(Data("leaf \($0)".utf8)) }

    @Test func accumulatorMatchesTheDefinition() throws {
        var tree = MerkleAccumulator()
        #expect(tree.root == Merkle.emptyRoot)
        for (index, leaf) in Self.leaves.enumerated() {
            tree.append(leafHash: leaf)
            #expect(tree.root == Self.referenceRoot(Self.leaves.prefix(index + 1)[...]), "size \(index + 1)")
            #expect(tree.peaks.count == (index + 1).nonzeroBitCount)
        }
        let resumed = try #require(MerkleAccumulator(size: tree.size, peaks: tree.peaks))
        #expect(resumed == tree)
        #expect(MerkleAccumulator(size: tree.size + 1, peaks: tree.peaks) == nil)
    }

    /// Proofs built by streaming the leaves verify, and fail for any other leaf or size.
    @Test func builtProofsVerify() {
        for size in 1...40 {
            let root = Self.referenceRoot(Self.leaves.prefix(size)[...])
            for index in 0..<size {
                var builder = MerkleProofBuilder(ranges: MerkleProofShape.inclusion(index: index, size: size))
                for leaf in Self.leaves.prefix(size) { builder.add(leafHash: leaf) }
                guard let proof = builder.proof else {
                    Issue.record("no proof for \(index) in \(size)")
                    continue
                }
                #expect(MerkleVerifier.verifyInclusion(leafHash: Self.leaves[index], index: UInt64(index), size: UInt64(size), proof: proof, root: root))
                let other = (index + 1) % size
                if other != index {
                    #expect(!MerkleVerifier.verifyInclusion(leafHash: Self.leaves[other], index: UInt64(index), size: UInt64(size), proof: proof, root: root))
                }
            }
            for oldSize in 1...size {
                var builder = MerkleProofBuilder(ranges: MerkleProofShape.consistency(from: oldSize, to: size))
                for leaf in Self.leaves.prefix(size) { builder.add(leafHash: leaf) }
                let oldRoot = Self.referenceRoot(Self.leaves.prefix(oldSize)[...])
                let proof = builder.proof ?? []
                #expect(MerkleVerifier.verifyConsistency(oldSize: UInt64(oldSize), newSize: UInt64(size), oldRoot: oldRoot, newRoot: root, proof: proof))
                if oldSize < size {
                    let wrong = Self.referenceRoot(Self.leaves.dropFirst().prefix(oldSize)[...])
                    #expect(!MerkleVerifier.verifyConsistency(oldSize: UInt64(oldSize), newSize: UInt64(size), oldRoot: wrong, newRoot: root, proof: proof))
                }
            }
        }
    }
}
