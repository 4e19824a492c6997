public import Foundation
public import StetCore
public import StetState

/// Every provider of this host behind one: services to the replicas, backup policies to restic.
public struct HostProvider: Provider {
    public var replicas: ReplicaProvider
    public var backups: BackupProvider
    public var monitors: MonitorRegistry

    public init(store: any StateStore, baseDirectory: String = FileManager.default.currentDirectoryPath) {
        replicas = ReplicaProvider(store: store, baseDirectory: baseDirectory)
        backups = BackupProvider(store: store, baseDirectory: baseDirectory)
        monitors = MonitorRegistry(store: store)
    }

    /// The host with providers already made: the loop's, on every pass (making them anew reads
    /// the working directory and the whole environment).
    public init(replicas: ReplicaProvider, backups: BackupProvider, monitors: MonitorRegistry) {
        self.replicas = replicas
        self.backups = backups
        self.monitors = monitors
    }

    public func observe(_ desired: DesiredState, now: Date) async throws -> ObservedState {
        var observed = try await replicas.observe(desired, now: now)
        observed.backups = try await backups.observe(desired, now: now).backups
        observed.monitors = try await monitors.observe(desired, now: now).monitors
        return observed
    }

    public func perform(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        switch change.resource.kind {
        case .backupPolicy: await backups.perform(change, desired: desired)
        case .monitor: await monitors.perform(change, desired: desired)
        case .service, .notifier, .maintenanceWindow: await replicas.perform(change, desired: desired)
        }
    }

    public func waitsForIntent(of change: Change) -> Bool { change.resource.kind == .service && replicas.waitsForIntent(of: change) }

    public func awaitReady(_ change: Change, desired: DesiredState, timeout: Double?) async -> ActionOutcome? {
        guard change.resource.kind == .service else { return nil }
        return await replicas.awaitReady(change, desired: desired, timeout: timeout)
    }
}
