/// The fields Stet's decoders accept, as the decoders themselves say it: every name a mapping's
/// reader asked for before `MappingReader.finish` refused the others as unknown. The manifest
/// reference (docs/manifests.md) is tested against it, so a field a decoder learns is a field
/// the reference must name.
package enum ManifestSchema {
    /// What `text` is read as.
    package enum Form: Sendable {
        /// Manifest documents (`Service`, `BackupPolicy`, `Monitor`, `Notifier`).
        case manifest
        /// A trust policy (`keys/trust.yaml`); key files are not read.
        case trustPolicy
    }

    /// Every field path (`spec.run.command`) that the readers of `text`'s mappings accept,
    /// whether `text` sets it or not, and whether it is required. A field inside a mapping that
    /// `text` does not hold is not reached: give the mapping (even `{}`) to learn its fields.
    /// Problems of `text` are ignored; a document of another kind or with errors is read as far
    /// as the decoder reads it.
    package static func fieldsAccepted(by text: String, as form: Form) -> [String: Bool] {
        let sink = DiagnosticSink(file: "schema")
        sink.accepted = [:]
        for cursor in SafeYAML.documents(text, sink: sink) ?? [] {
            switch form {
            case .manifest:
                var declarations = Declarations()
                _ = DocumentDecoder.decode(cursor, declarations: &declarations)
            case .trustPolicy:
                _ = TrustPolicy.decode(cursor, digest: "", loadKey: { _ in nil })
            }
        }
        return sink.accepted ?? [:]
    }
}
