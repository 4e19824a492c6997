public import Foundation

/// `kind: MaintenanceWindow`: when the owners allow (or forbid) disruption of the resources it
/// selects (docs/architecture.md, "Maintenance windows").
///
/// An **allow** window governing a resource makes its intentional disruptive changes (a new
/// spec, a scale-down, a forget) wait until the window is open; a **deny** window, while open,
/// holds back every change it governs, corrections included when its `disruption` names `none`.
public struct MaintenanceWindow: Hashable, Sendable, Codable {
    public enum Mode: String, Hashable, Sendable, Codable, CaseIterable {
        case allow, deny
    }

    /// The shortest and longest opening.
    public static let durations = StetDuration.seconds(1)...StetDuration(milliseconds: 7 * 86_400_000)

    public var metadata: Metadata
    public var schedule: CronSchedule
    public var duration: StetDuration
    public var zone: ZoneInfo
    public var mode: Mode
    /// Labels a resource must carry (all of them) to be governed; empty: every resource.
    public var selector: [String: String]
    /// The disruptions it governs.
    public var disruption: Set<Disruption>

    public init(
        metadata: Metadata, schedule: CronSchedule, duration: StetDuration, zone: ZoneInfo = .utc, mode: Mode = .allow,
        selector: [String: String] = [:], disruption: Set<Disruption> = [.restart, .data]
    ) {
        self.metadata = metadata
        self.schedule = schedule
        self.duration = duration
        self.zone = zone
        self.mode = mode
        self.selector = selector
        self.disruption = disruption
    }

    public var name: String { metadata.name }

    /// Whether the window governs a change of `disruption` to a resource carrying `labels`.
    public func governs(labels: [String: String], disruption: Disruption) -> Bool {
        self.disruption.contains(disruption) && selector.allSatisfy { labels[$0.key] == $0.value }
    }

    /// The most openings one span is merged from, and the longest it is followed: a schedule
    /// that reopens before it closes (every minute, open an hour) is one long span, reported as
    /// closing at whichever bound comes first. Both keep the cost of a span small.
    static let mergeLimit = 200
    static let mergeSpan: Int64 = 8 * 86_400

    /// The span the window is open in at `now`, from its opening to its close (openings that
    /// overlap or touch are one span); nil when it is closed.
    public func openSpan(at now: Date) -> DateInterval? {
        let instant = Self.seconds(now)
        let length = duration.milliseconds / 1000
        guard let start = schedule.next(after: instant - length, in: zone), start <= instant else { return nil }
        return DateInterval(start: Self.date(start), end: Self.date(close(openedAt: start)))
    }

    /// The next span that opens after `now` (while open: the one after the current span).
    public func nextSpan(after now: Date) -> DateInterval? {
        let instant = Self.seconds(now)
        let from = openSpan(at: now).map { Self.seconds($0.end) } ?? instant
        guard let start = schedule.next(after: from, in: zone) else { return nil }
        return DateInterval(start: Self.date(start), end: Self.date(close(openedAt: start)))
    }

    private func close(openedAt start: Int64) -> Int64 {
        let length = duration.milliseconds / 1000
        var end = start + length
        var last = start
        for _ in 0..<Self.mergeLimit {
            guard end - start < Self.mergeSpan, let next = schedule.next(after: last, in: zone), next <= end else { break }
            end = max(end, next + length)
            last = next
        }
        return end
    }

    static func seconds(_ date: Date) -> Int64 { Int64(saturating: date.timeIntervalSince1970.rounded(.down)) }
    static func date(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: Double(seconds)) }

    /// `02:00 CET`, or `Tue 2026-12-01 02:00 CET` when not within the next day of `now`: a time of
    /// the window in its own zone.
    public func describe(_ date: Date, from now: Date) -> String {
        let instant = Self.seconds(date)
        let local = zone.localType(at: instant)
        let wall = instant + Int64(local.offset)
        let civil = CivilDate(days: wall.floorDivided(by: 86_400))
        let minuteOfDay = wall.floorModulo(86_400) / 60
        let time = String(format: "%02lld:%02lld", minuteOfDay / 60, minuteOfDay % 60)
        let zoneName = local.abbreviation.isEmpty ? zone.name : local.abbreviation
        if date.timeIntervalSince(now) < 86_400, date >= now.addingTimeInterval(-86_400) { return "\(time) \(zoneName)" }
        let weekday = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][Int(CivilDate.weekday(days: civil.days))]
        return String(format: "%@ %04lld-%02lld-%02lld %@ %@", weekday, civil.year, civil.month, civil.day, time, zoneName)
    }
}

extension Disruption: CaseIterable, Comparable {
    public static var allCases: [Disruption] { [.none, .restart, .data] }
    public static func < (lhs: Disruption, rhs: Disruption) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

extension StetDuration {
    /// `5h12m`, `3m40s`, `40s`, `2d3h`: a span to wait, in its two largest units.
    public static func approximate(seconds: Double) -> String {
        let total = Int64(saturating: max(seconds, 0))
        let units: [(String, Int64)] = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)]
        guard let first = units.firstIndex(where: { total >= $0.1 }) else { return "0s" }
        let (name, size) = units[first]
        var text = "\(total / size)\(name)"
        if first + 1 < units.count {
            let (smaller, smallerSize) = units[first + 1]
            let rest = total % size / smallerSize
            if rest > 0 { text += "\(rest)\(smaller)" }
        }
        return text
    }
}
