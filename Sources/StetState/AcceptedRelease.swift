public import Foundation

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

/// RFC 3339 times in UTC, whole seconds: `2026-11-29T10:00:00Z`.
public enum RFC3339 {
    /// UTC with a `Z`; `milliseconds` adds `.mmm` (audit entries, where order within a second
    /// matters to a reader).
    public static func format(_ date: Date, milliseconds: Bool = false) -> String {
        let totalMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(totalMilliseconds.quotientAndRemainder(dividingBy: 1000).quotient)
        var fraction = Int(totalMilliseconds % 1000)
        if fraction < 0 {
            seconds -= 1
            fraction += 1000
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let base = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        return milliseconds ? base + String(format: ".%03dZ", fraction) : base + "Z"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; nil for anything else.
    public static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }
}
