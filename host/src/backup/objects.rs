//! The [`ObjectStore`](super::ObjectStore) over a `backup-driver` component's pool: each
//! call is one driver call, bound to one container.
