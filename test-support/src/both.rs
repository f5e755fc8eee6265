//! One test body, run on both databases.

/// Makes a `sqlite` and a `postgres` test of each named test body of the calling module:
/// `on_both_databases!(a, b)` adds the tests `a::sqlite`, `a::postgres`, `b::sqlite` and
/// `b::postgres`, each calling `async fn a(kind: Kind)` with its [`crate::Kind`].
///
/// - `on_both_databases!(multi_thread; a, b)` runs them on a two-worker runtime.
/// - `on_both_databases!(multi_thread, via run; a, b)` calls `run(kind, a)` instead, for
///   suites whose bodies take what `run` makes of the database (a store, say).
///
/// Each body gets its database from [`crate::TestDb::new`] (or a helper built on it), so
/// the PostgreSQL run reports SKIPPED (or fails, where PostgreSQL is required) without one.
#[macro_export]
macro_rules! on_both_databases {
    (multi_thread, via $run:ident; $($name:ident),+ $(,)?) => {
        $crate::on_both_databases!(
            @tests #[tokio::test(flavor = "multi_thread", worker_threads = 2)] ($run) $($name),+
        );
    };
    (multi_thread; $($name:ident),+ $(,)?) => {
        $crate::on_both_databases!(
            @tests #[tokio::test(flavor = "multi_thread", worker_threads = 2)] () $($name),+
        );
    };
    (@tests #[$test:meta] $run:tt $($name:ident),+) => {
        $(
            mod $name {
                #[$test]
                async fn sqlite() {
                    $crate::on_both_databases!(@call $run $name Sqlite)
                }
                #[$test]
                async fn postgres() {
                    $crate::on_both_databases!(@call $run $name Postgres)
                }
            }
        )+
    };
    (@call () $name:ident $kind:ident) => {
        super::$name($crate::Kind::$kind).await
    };
    (@call ($run:ident) $name:ident $kind:ident) => {
        super::$run($crate::Kind::$kind, super::$name).await
    };
    ($($name:ident),+ $(,)?) => {
        $crate::on_both_databases!(@tests #[tokio::test] () $($name),+);
    };
}
