use super::*;

#[test]
fn severity_mapping_follows_the_documented_weights() {
    // Certain attacks of one category score their impact weight.
    assert_eq!(severity(1.0, &[0.0, 1.0, 0.0, 0.0, 0.0]), 7.0);
    assert_eq!(severity(1.0, &[0.0, 0.0, 1.0, 0.0, 0.0]), 4.0);
    assert_eq!(severity(1.0, &[0.0, 0.0, 0.0, 0.0, 1.0]), 10.0);
    // Half sure of an r2l (impact 8): 4.
    assert_eq!(severity(0.5, &[0.5, 0.0, 0.0, 0.5, 0.0]), 4.0);
    // Mixed categories weigh their impacts by share of the attack mass.
    assert_eq!(severity(1.0, &[0.0, 0.5, 0.5, 0.0, 0.0]), 5.5);
    assert_eq!(severity(0.0, &[1.0, 0.0, 0.0, 0.0, 0.0]), 0.0);
    assert_eq!(risk_level(10.0), "CRITICAL");
    assert_eq!(risk_level(7.0), "HIGH");
    assert_eq!(risk_level(4.0), "MEDIUM");
    assert_eq!(risk_level(1.2), "LOW");
    assert_eq!(risk_level(0.2), "INFO");
    assert_eq!(recommended_action("INFO", 1), "none");
    assert_eq!(recommended_action("HIGH", 0), "none");
    assert_eq!(
        recommended_action("CRITICAL", 4),
        "isolate the host and open an incident"
    );
}
