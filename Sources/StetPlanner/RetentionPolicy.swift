public import Foundation
public import StetCore

/// Restic's retention rules (`forget --keep-last/hourly/daily/weekly/monthly`), computed the way
/// restic computes them, so a plan knows whether `forget` would remove anything.
public enum RetentionPolicy {
    /// The ids of the snapshots `retention` keeps. Restic walks the snapshots newest first;
    /// each rule keeps a snapshot when its time falls in another bucket (hour, day, ISO week,
    /// month) than the last one it kept, until its count is used up.
    public static func keep(_ snapshots: [ObservedBackup.Snapshot], _ retention: BackupPolicy.Retention,
                            calendar: Calendar = .current) -> Set<String>
    {
        let newestFirst = snapshots.sorted { $0.time > $1.time }
        var rules: [(count: Int, bucket: (Date, Int) -> Int, last: Int?)] = []
        if let last = retention.last { rules.append((last, { _, index in index }, nil)) }
        func key(_ components: Set<Calendar.Component>, _ combine: @escaping (DateComponents) -> Int) -> (Date, Int) -> Int {
            { date, _ in combine(calendar.dateComponents(components, from: date)) }
        }
        if let hourly = retention.hourly {
            rules.append((hourly, key([.year, .month, .day, .hour]) { ($0.year! * 10_000 + $0.month! * 100 + $0.day!) * 100 + $0.hour! }, nil))
        }
        if let daily = retention.daily {
            rules.append((daily, key([.year, .month, .day]) { $0.year! * 10_000 + $0.month! * 100 + $0.day! }, nil))
        }
        if let weekly = retention.weekly {
            var iso = Calendar(identifier: .iso8601)
            iso.timeZone = calendar.timeZone
            rules.append((weekly, { date, _ in
                let parts = iso.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
                return parts.yearForWeekOfYear! * 100 + parts.weekOfYear!
            }, nil))
        }
        if let monthly = retention.monthly {
            rules.append((monthly, key([.year, .month]) { $0.year! * 100 + $0.month! }, nil))
        }
        var kept: Set<String> = []
        for (index, snapshot) in newestFirst.enumerated() {
            for rule in rules.indices where rules[rule].count > 0 {
                let value = rules[rule].bucket(snapshot.time, index)
                if value != rules[rule].last {
                    kept.insert(snapshot.id)
                    rules[rule].last = value
                    rules[rule].count -= 1
                }
            }
        }
        return kept
    }

    public static func isEmpty(_ retention: BackupPolicy.Retention) -> Bool {
        [retention.last, retention.hourly, retention.daily, retention.weekly, retention.monthly].allSatisfy { $0 == nil }
    }
}
