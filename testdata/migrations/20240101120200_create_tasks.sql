-- migrate:up
CREATE TABLE tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    assignee_id bigint REFERENCES users (id) ON DELETE SET NULL,
    title       text NOT NULL,
    status      text NOT NULL DEFAULT 'todo'
                CONSTRAINT tasks_status_check CHECK (status IN ('todo', 'doing', 'done')),
    due_at      timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tasks_project_id_idx ON tasks (project_id);
CREATE INDEX tasks_assignee_id_idx ON tasks (assignee_id);

-- migrate:down
DROP TABLE tasks;
