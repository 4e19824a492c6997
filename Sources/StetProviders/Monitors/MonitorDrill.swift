public import Foundation
public import StetCore

/// `stet drill monitor`: a test alert (StetDrill) through every notifier of a monitor, confirmed
/// where the receiver can be asked (Alertmanager's API), then resolved. What the command prints
/// and records comes from the deliveries this returns.
public struct MonitorDrill: Sendable {
    public let sender: NotifierSender
    /// Seconds to wait for Alertmanager to show the alert.
    public var timeout: Double

    public init(sender: NotifierSender, timeout: Double) {
        self.sender = sender
        self.timeout = timeout
    }

    /// How one notifier took the alert.
    public struct Delivery: Sendable, Equatable {
        public let notifier: String
        /// Nil: delivered.
        public let failure: String?
        /// Where it was confirmed, when it was (Alertmanager's alerts URL).
        public let confirmedAt: String?
    }

    /// The test alert for `monitor`, started at `now`.
    public static func alert(for monitor: Monitor, now: Date) -> AlertMessage {
        var labels = AlertMessage.labels(for: monitor)
        labels["alertname"] = "StetDrill"
        labels["drill"] = "true"
        return AlertMessage(
            labels: labels, annotations: ["summary": "drill: a test alert for monitor \(monitor.metadata.name), sent by stet drill"],
            startsAt: RFC3339.format(now))
    }

    /// Sends the test alert to every notifier of `monitor` found in `notifiers`, handing each
    /// delivery to `progress` as it is known, then resolves the alert everywhere.
    public func run(
        _ monitor: Monitor, notifiers: [String: Notifier], now: Date = Date(), progress: (Delivery) -> Void = { _ in }
    ) -> [Delivery] {
        var alert = Self.alert(for: monitor, now: now)
        var deliveries: [Delivery] = []
        for name in monitor.notify {
            guard let notifier = notifiers[name] else { continue }
            let delivery = deliver(alert, to: notifier, named: name, monitor: monitor.metadata.name)
            progress(delivery)
            deliveries.append(delivery)
        }
        alert.endsAt = RFC3339.format(Date())
        for name in monitor.notify {
            if let notifier = notifiers[name] { _ = sender.send([alert], to: notifier) }
        }
        return deliveries
    }

    private func deliver(_ alert: AlertMessage, to notifier: Notifier, named name: String, monitor: String) -> Delivery {
        if let error = sender.send([alert], to: notifier) { return Delivery(notifier: name, failure: error, confirmedAt: nil) }
        guard case .alertmanager(let url) = notifier.target else { return Delivery(notifier: name, failure: nil, confirmedAt: nil) }
        let alerts = Self.alertsURL(url)
        guard Self.waitForDrill(alerts, monitor: monitor, timeout: timeout) else {
            return Delivery(
                notifier: name,
                failure: "Alertmanager took the alert but does not show it after \(StetDuration(seconds: timeout)) (\(alerts))",
                confirmedAt: nil)
        }
        return Delivery(notifier: name, failure: nil, confirmedAt: alerts)
    }

    /// `…/api/v2/alerts` of an Alertmanager at `base`.
    static func alertsURL(_ base: String) -> String { (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/api/v2/alerts" }

    /// Whether Alertmanager's answer `body` (a JSON list of alerts) holds a StetDrill alert of
    /// `monitor`.
    package static func showsDrill(_ body: Data, monitor: String) -> Bool {
        guard let alerts = try? JSONSerialization.jsonObject(with: body) as? [[String: Any]] else { return false }
        return alerts.contains {
            let labels = $0["labels"] as? [String: String]
            return labels?["alertname"] == "StetDrill" && labels?["monitor"] == monitor
        }
    }

    /// Polls Alertmanager's alerts until a StetDrill alert of `monitor` shows, or `timeout`
    /// passes. Answers that are not a JSON list of alerts count as not showing it.
    static func waitForDrill(_ alertsURL: String, monitor: String, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if case .success(let response) = PlainHTTP.request("GET", alertsURL, timeout: 2), showsDrill(response.body, monitor: monitor) {
                return true
            }
            usleep(200_000)
        } while Date() < deadline
        return false
    }
}
