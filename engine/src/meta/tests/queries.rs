//! Reads: users by id and name, listings, sessions.

use super::*;
use crate::limits::USER_PAGE_MAX;

fn names(page: &UserPage) -> Vec<&str> {
    page.users
        .iter()
        .map(|user| user.username.as_str())
        .collect()
}

fn query(prefix: &str, after: Option<&str>, limit: usize) -> UserQuery {
    UserQuery {
        prefix: prefix.into(),
        after: after.map(|name| Username::fold(name).unwrap()),
        limit,
    }
}

fn with_users(list: &[&str]) -> Meta {
    let mut meta = Meta::new();
    for name in list {
        meta.bidder(name);
    }
    meta
}

#[test]
fn a_user_is_found_by_id_or_by_any_casing_of_their_username() {
    let meta = with_users(&["Alice"]);
    assert_eq!(
        meta.state.user(UserId(1)).unwrap().username().as_str(),
        "alice"
    );
    assert_eq!(
        meta.state.user_by_username("ALICE").unwrap().id(),
        UserId(1)
    );
    assert!(meta.state.user_by_username("bob").is_none());
    assert!(
        meta.state.user_by_username("no way").is_none(),
        "invalid input finds nobody"
    );
    assert!(meta.state.user(UserId(2)).is_none());
}

#[test]
fn listings_page_by_username_with_a_prefix_and_an_exclusive_cursor() {
    let meta = with_users(&["bob", "anna", "andy", "ann.b", "carl", "amy", "an-x"]);
    let page = meta.state.list_users(&query("AN", None, 2));
    assert_eq!(names(&page), ["an-x", "andy"]);
    let next = page.next_after.as_ref().map(Username::as_str);
    let page = meta.state.list_users(&query("an", next, 2));
    assert_eq!(names(&page), ["ann.b", "anna"]);
    assert_eq!(page.next_after, None, "no more names start with the prefix");
    let all = meta.state.list_users(&query("", None, 100));
    assert_eq!(
        names(&all),
        ["amy", "an-x", "andy", "ann.b", "anna", "bob", "carl"]
    );
    assert_eq!(all.next_after, None);
    // A cursor before the prefix starts at the prefix; after it, nothing matches.
    assert_eq!(
        names(&meta.state.list_users(&query("b", Some("amy"), 5))),
        ["bob"]
    );
    assert!(
        meta.state
            .list_users(&query("a", Some("bob"), 5))
            .users
            .is_empty()
    );
    assert!(
        meta.state
            .list_users(&query("zz", None, 5))
            .users
            .is_empty()
    );
}

#[test]
fn listing_limits_are_clamped_to_1_through_200() {
    let names: Vec<String> = (0..USER_PAGE_MAX + 5)
        .map(|i| format!("user{i:04}"))
        .collect();
    let mut meta = Meta::new();
    for name in &names {
        meta.bidder(name);
    }
    let page = meta.state.list_users(&query("", None, usize::MAX));
    assert_eq!(page.users.len(), USER_PAGE_MAX);
    assert_eq!(page.next_after.unwrap().as_str(), names[USER_PAGE_MAX - 1]);
    assert_eq!(meta.state.list_users(&query("", None, 0)).users.len(), 1);
}

#[test]
fn summaries_carry_no_secrets() {
    let mut meta = with_users(&["alice"]);
    meta.sign_in(UserId(1), 1);
    let page = meta.state.list_users(&query("", None, 10));
    let json = serde_json::to_string(&page.users).unwrap();
    assert!(json.contains("alice") && !json.contains("argon2"), "{json}");
    assert_eq!(page.users[0], meta.account(UserId(1)).summary());
}

#[test]
fn sessions_of_a_user_list_every_family_and_the_owner_of_a_family_is_known() {
    let mut meta = with_users(&["alice", "bob"]);
    meta.sign_in(UserId(1), 9);
    meta.sign_in(UserId(1), 3);
    let families: Vec<u128> = meta
        .state
        .sessions_of(UserId(1))
        .iter()
        .map(|session| session.family().0)
        .collect();
    assert_eq!(families, [3, 9]);
    assert!(meta.state.sessions_of(UserId(2)).is_empty());
    assert!(meta.state.sessions_of(UserId(404)).is_empty());
    assert_eq!(meta.state.family_owner(FamilyId(9)), Some(UserId(1)));
}
