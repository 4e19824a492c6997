extension FixedWidthInteger {
    /// `value` rounded toward zero, clamped to this type's range; 0 for NaN. For numbers that
    /// come from outside (options, state files, arithmetic on them), where `Self(value)` would
    /// trap on NaN, an infinity or anything beyond the range.
    public init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value <= Double(Self.min) {
            self = Self.min
        } else if value >= Double(Self.max) {
            // Double(Self.max) rounds up to a power of two for 64-bit types: `>=` keeps
            // `Self(value)` below from ever seeing it.
            self = Self.max
        } else {
            self = Self(value)
        }
    }

    /// `self + other`, or the bound it would cross.
    public func addingSaturating(_ other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? Self.max : Self.min
    }
}
