public import Foundation
public import StetCore

/// The release in force on this host (`release.json`): the highest version accepted so far, its
/// digest, and when it was accepted. A new release must have a higher version, or the same
/// version with the same digest. The file keeps its first form, `{"acceptedAt", "digest",
/// "version"}`; the commit a git release came from is kept beside it (`git/accepted.json`).
public struct AcceptedRelease: Codable, Equatable, Sendable {
    /// Version and digest; never a commit here.
    public var release: ReleaseRef
    public var acceptedAt: Date

    public init(_ release: ReleaseRef, acceptedAt: Date) {
        self.release = release.withoutCommit
        self.acceptedAt = acceptedAt
    }

    public init(version: Int, digest: String, acceptedAt: Date) {
        self.init(ReleaseRef(version: version, digest: digest), acceptedAt: acceptedAt)
    }

    public var version: Int { release.version }
    /// `sha256:<hex>` of the release index bytes (the envelope payload).
    public var digest: String { release.digest }

    private enum CodingKeys: String, CodingKey {
        case version, digest, acceptedAt
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            version: try container.decode(Int.self, forKey: .version), digest: try container.decode(String.self, forKey: .digest),
            acceptedAt: try container.decode(Date.self, forKey: .acceptedAt))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(release.version, forKey: .version)
        try container.encode(release.digest, forKey: .digest)
        try container.encode(acceptedAt, forKey: .acceptedAt)
    }

    public static let key = "release.json"

    public static func load(from store: any StateStore) throws -> AcceptedRelease? {
        guard let data = try store.read(key) else { return nil }
        do {
            return try JSONCoding.decoder.decode(AcceptedRelease.self, from: data)
        } catch {
            throw StateError.corrupt(key, "\(error)")
        }
    }

    public func save(to store: any StateStore) throws {
        try store.write(Self.key, try JSONCoding.encoder.encode(self))
    }
}

/// The JSON conventions of Stet's own files: sorted keys, RFC 3339 UTC dates.
public enum JSONCoding {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 time: \(text)"))
            }
            return date
        }
        return decoder
    }
}
