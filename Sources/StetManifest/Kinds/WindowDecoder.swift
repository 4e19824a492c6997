import Foundation
public import StetCore
import StetCrypto

/// `kind: MaintenanceWindow`: when disruption of the resources it selects is allowed (or not).
enum WindowDecoder {
    static func decode(_ cursor: Cursor, metadata: Metadata?) -> MaintenanceWindow? {
        guard let spec = cursor.mapping() else { return nil }
        defer { spec.finish() }
        let schedule = spec.required("schedule", "a cron schedule such as \"0 2 * * *\"").flatMap { cursor -> CronSchedule? in
            guard let text = cursor.string() else { return nil }
            do { return try CronSchedule(parsing: text) } catch let error as CronSchedule.ParseError {
                cursor.error(error.message)
                return nil
            } catch {
                cursor.error("\(error)")
                return nil
            }
        }
        let duration = spec.required("duration", "how long each opening lasts, such as 2h").flatMap { cursor -> StetDuration? in
            guard let duration = cursor.duration() else { return nil }
            guard MaintenanceWindow.durations.contains(duration) else {
                cursor.error("expected a duration from \(MaintenanceWindow.durations.lowerBound) to \(MaintenanceWindow.durations.upperBound), found \(duration)")
                return nil
            }
            return duration
        }
        let zone = spec.field("timeZone", default: ZoneInfo.utc) { cursor -> ZoneInfo? in
            guard let name = cursor.string() else { return nil }
            switch ZoneDirectory.load(name) {
            case .zone(let zone): return zone
            case .problem(let problem):
                cursor.error(problem)
                return nil
            }
        }
        let mode = spec.field("mode", default: .allow) { $0.oneOf(MaintenanceWindow.Mode.self) }
        let selector = spec.field("selector", default: [:]) { $0.stringMap(keyRule: DocumentDecoder.labelKeyProblem) }
        let disruption = spec.field("disruption", default: [Disruption.restart, .data]) { cursor -> Set<Disruption>? in
            guard let list = cursor.list() else { return nil }
            let values = list.compactMap { $0.oneOf(Disruption.self) }
            guard values.count == list.count else { return nil }
            guard !values.isEmpty else {
                cursor.error("expected at least one of none, restart, data")
                return nil
            }
            return Set(values)
        }
        guard let metadata, let schedule, let duration, let zone, let mode, let selector, let disruption else { return nil }
        return MaintenanceWindow(
            metadata: metadata, schedule: schedule, duration: duration, zone: zone, mode: mode, selector: selector,
            disruption: disruption)
    }
}

/// The system's zoneinfo (`TZDIR`, else `/usr/share/zoneinfo`), read once per zone and process.
public enum ZoneDirectory {
    private static let cache = ZoneCache()

    public static var path: String {
        if let dir = ProcessInfo.processInfo.environment["TZDIR"], dir.hasPrefix("/"), dir.utf8.count < 1024 { return dir }
        return "/usr/share/zoneinfo"
    }

    public enum Loaded: Sendable {
        case zone(ZoneInfo)
        case problem(String)
    }

    /// The zone named `name`, or why it cannot be used.
    public static func load(_ name: String) -> Loaded {
        if name == "UTC" || name == "Etc/UTC" { return .zone(.utc) }
        guard ZoneInfo.isValidName(name) else {
            return .problem("expected an IANA time zone name such as Europe/Berlin, found \"\(TextEscaping.excerpt(name, limit: 80))\"")
        }
        if let zone = cache.get(name) { return .zone(zone) }
        let path = Self.path + "/" + name
        let data: Data
        do {
            guard let read = try InputFile.read(path, limit: ZoneInfo.maximumSize) else {
                return .problem("no time zone \(name) in the system's zoneinfo (\(Self.path)); is tzdata installed?")
            }
            data = read
        } catch {
            return .problem("cannot read the time zone \(name): \(error)")
        }
        do {
            let zone = try ZoneInfo(name: name, tzif: data)
            cache.set(name, zone)
            return .zone(zone)
        } catch {
            return .problem("the time zone \(name) in \(path) cannot be used: \(error)")
        }
    }
}

private final class ZoneCache: @unchecked Sendable {
    private let lock = NSLock()
    private var zones: [String: ZoneInfo] = [:]

    func get(_ name: String) -> ZoneInfo? { lock.withLock { zones[name] } }
    func set(_ name: String, _ zone: ZoneInfo) { lock.withLock { zones[name] = zone } }
}
