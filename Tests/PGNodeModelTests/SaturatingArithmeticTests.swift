import PGNodeModel
import Testing

@Suite("saturating arithmetic for outside values")
struct SaturatingArithmeticTests {
    @Test("Int64: sums, differences and products stop at the bounds")
    func int64() {
        #expect(Int64.max.addingSaturating(1) == .max)
        #expect(Int64.min.addingSaturating(-1) == .min)
        #expect(Int64(5).addingSaturating(-7) == -2)
        #expect(Int64.min.subtractingSaturating(1) == .min)
        #expect(Int64.max.subtractingSaturating(-1) == .max)
        #expect(Int64(0).subtractingSaturating(.min) == .max)
        #expect(Int64.max.multipliedSaturating(by: 2) == .max)
        #expect(Int64.min.multipliedSaturating(by: -1) == .max)
        #expect(Int64.max.multipliedSaturating(by: -2) == .min)
        #expect(Int64(-3).multipliedSaturating(by: 4) == -12)
        #expect(Int64.max.isSaturated && Int64.min.isSaturated && !Int64(0).isSaturated)
        #expect([Int64.max, 1, -5].saturatingSum() == .max)  // the bound sticks
        #expect([Int64.min, -1, 5].saturatingSum() == .min)
        #expect([Int64(1), 2, 3].saturatingSum() == 6)
    }

    @Test("UInt64 and Int")
    func unsigned() {
        #expect(UInt64.max.addingSaturating(1) == .max)
        #expect((UInt64(1) << 63).multipliedSaturating(by: 2) == .max)
        #expect([UInt64.max, .max].saturatingSum() == .max)
        #expect(Int.max.addingSaturating(1) == .max)
        #expect(Int.min.multipliedSaturating(by: 2) == .min)
    }

    @Test("Double → Int64: clamped when finite, never for NaN or ±∞")
    func doubles() {
        #expect(Int64(clampingFinite: .nan) == nil)
        #expect(Int64(clampingFinite: .infinity) == nil)
        #expect(Int64(clampingFinite: -.infinity) == nil)
        #expect(Int64(clampingFinite: 1e308) == .max)
        #expect(Int64(clampingFinite: -1e308) == .min)
        #expect(Int64(clampingFinite: 9_223_372_036_854_775_808.0) == .max)
        #expect(Int64(clampingFinite: -9_223_372_036_854_775_808.0) == .min)
        #expect(Int64(clampingFinite: 9_223_372_036_854_774_784.0) == 9_223_372_036_854_774_784)
        #expect(Int64(clampingFinite: -2.9) == -2)
        #expect(Int64(clampingFinite: .leastNonzeroMagnitude) == 0)
    }

    @Test("timestamps at the ends of Int64 print without trapping")
    func timestamps() {
        #expect(Timestamp(nanoseconds: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(nanoseconds: -1).rfc3339 == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp(nanoseconds: .max).rfc3339 == "2262-04-11T23:47:16.854Z")
        #expect(Timestamp(nanoseconds: .min).rfc3339 == "1677-09-21T00:12:43.145Z")
        #expect(Timestamp(nanoseconds: .min).seconds == -9_223_372_037)
    }
}
