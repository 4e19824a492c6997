public import Foundation
import StetCore

/// The release in force on this host: the highest version accepted so far and its digest.
/// A new release must have a higher version, or the same version with the same digest.
public struct AcceptedRelease: Codable, Equatable, Sendable {
    public var version: Int
    /// `sha256:<hex>` of the release index bytes (the envelope payload).
    public var digest: String
    public var acceptedAt: Date

    public init(version: Int, digest: String, acceptedAt: Date) {
        self.version = version
        self.digest = digest
        self.acceptedAt = acceptedAt
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
